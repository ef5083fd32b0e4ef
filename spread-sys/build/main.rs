//! spread-sys's build script: find an installed C Spread 3.17 ([`find`]), generate bindings
//! to its `sp.h` ([`bindgen`]), and tell cargo how to link it.
//!
//! The same modules are compiled into the `spread-sys-build` crate (build-lib/), whose tests
//! run in the default workspace against a small header of our own, without a C Spread.

mod bindgen;
mod env;
mod find;

use std::path::PathBuf;

fn main() {
    let env = env::Env::from_build_script();
    let thread_safe = std::env::var_os("CARGO_FEATURE_THREAD_SAFE").is_some();
    let result = find::find(&env, &find::Options::new(thread_safe))
        .and_then(|found| bindgen::generate(&env, &found, true).map(|code| (found, code)));

    for name in env.names_read() {
        println!("cargo:rerun-if-env-changed={name}");
    }
    for line in env.values_read() {
        println!("spread-sys: {line}");
    }
    let (found, code) = match result {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("\n{e}\n");
            std::process::exit(1);
        }
    };

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("bindings.rs"), code).expect("write bindings.rs");

    println!(
        "spread-sys: using {} and lib{} ({}) from {}, found by {}",
        found.header().display(),
        found.lib_name,
        found.link.cargo_kind(),
        found.lib_dir.display(),
        found.found_by
    );
    println!("cargo:rustc-link-search=native={}", found.lib_dir.display());
    println!(
        "cargo:rustc-link-lib={}={}",
        found.link.cargo_kind(),
        found.lib_name
    );
    if found.link == find::LinkKind::Static && thread_safe && !found.target.contains("windows") {
        println!("cargo:rustc-link-lib=pthread");
    }
    // A shared library outside the loader's default path: let this crate's own tests find
    // it. Dependents get the directory as DEP_SPREAD_LIB_DIR and can do the same.
    if found.link == find::LinkKind::Dylib && !is_system_lib_dir(&found.lib_dir) {
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            found.lib_dir.display()
        );
    }

    // Metadata for dependents (links = "spread"): DEP_SPREAD_INCLUDE, DEP_SPREAD_LIB_DIR, ...
    println!("cargo:include={}", found.include_dir.display());
    println!("cargo:lib_dir={}", found.lib_dir.display());
    println!("cargo:lib={}", found.lib_name);
    println!(
        "cargo:static={}",
        u8::from(found.link == find::LinkKind::Static)
    );
    if let Some(prefix) = &found.prefix {
        println!("cargo:root={}", prefix.display());
    }
    match found.version {
        Some((major, minor, patch)) => {
            println!("cargo:version={major}.{minor}.{patch}");
            if (major, minor) != (3, 17) {
                println!(
                    "cargo:warning=spread-sys: {} is Spread {major}.{minor}.{patch}; these bindings are made for 3.17",
                    found.header().display()
                );
            }
        }
        None => println!(
            "cargo:warning=spread-sys: no SPREAD_VERSION in {}; is it Spread 3.17's sp.h?",
            found.header().display()
        ),
    }
}

/// Directories the dynamic loader searches without being told.
fn is_system_lib_dir(dir: &std::path::Path) -> bool {
    ["/usr/lib", "/lib", "/usr/lib64", "/lib64"]
        .iter()
        .any(|sys| dir.starts_with(sys))
}
