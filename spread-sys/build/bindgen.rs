//! Running bindgen on the `sp.h` that [`super::find`] found, for the target being built.
//!
//! clang always gets `--target=` (the Rust target in clang's spelling) and, when there is one,
//! `--sysroot=` (from `SPREAD_SYSROOT` or the target's `BINDGEN_EXTRA_CLANG_ARGS`): a cross
//! build reads the target's headers or fails, it never reads the host's.

use super::env::Env;
use super::find::{bindgen_extra_clang_args, Error, Found};

/// The arguments clang is given for `found`.
pub fn clang_args(env: &Env, found: &Found) -> Vec<String> {
    let mut args = vec![format!("--target={}", found.clang_target)];
    if let Some(sysroot) = &found.sysroot {
        args.push(format!("--sysroot={}", sysroot.display()));
    }
    args.push(format!("-I{}", found.include_dir.display()));
    // bindgen adds BINDGEN_EXTRA_CLANG_ARGS itself when it runs in a build script; reading
    // them here too records them for `rerun-if-env-changed` and keeps tests equal to builds.
    for extra in bindgen_extra_clang_args(env) {
        if !args.contains(&extra) {
            args.push(extra);
        }
    }
    args
}

/// Loads libclang (from `LIBCLANG_PATH` when set), or says what to install.
pub fn ensure_libclang(env: &Env, found: &Found) -> Result<(), Error> {
    // clang-sys reads it from the process environment; reading it here records it.
    env.raw("LIBCLANG_PATH");
    if clang_sys::is_loaded() {
        return Ok(());
    }
    clang_sys::load().map_err(|detail| Error::NoLibclang {
        header: found.header(),
        detail,
    })
}

/// The Rust bindings of `found`'s `sp.h`: the `SP_*` functions, the types they use and the
/// constants of sp.h. `in_build_script` adds cargo's rerun lines for every header read.
pub fn generate(env: &Env, found: &Found, in_build_script: bool) -> Result<String, Error> {
    ensure_libclang(env, found)?;
    let args = clang_args(env, found);
    let header = found.header();
    let mut builder = ::bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(&args)
        // Only Spread's own API: the client calls, their types and sp.h's constants, not
        // the event library (E_*) that sp_events.h also declares.
        .allowlist_function("SP_.*")
        .allowlist_type("mailbox|service|scatter|scat_element|group_id|sp_time")
        .allowlist_file(r".*[/\\]sp\.h")
        .blocklist_function("E_.*")
        // C's `int`: service words and return codes are ints in the C API.
        .default_macro_constant_type(::bindgen::MacroTypeVariation::Signed)
        .derive_default(true)
        .derive_eq(true)
        .generate_comments(false)
        .layout_tests(true)
        .use_core()
        .rust_target(::bindgen::RustTarget::stable(85, 0).expect("a Rust version bindgen knows"));
    if in_build_script {
        builder = builder.parse_callbacks(Box::new(::bindgen::CargoCallbacks::new()));
    }
    let bindings = builder.generate().map_err(|e| Error::Bindgen {
        header: header.clone(),
        target: found.target.clone(),
        clang_args: args.clone(),
        // clang's diagnostics come one a line: keep the message one paragraph.
        detail: e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    Ok(bindings.to_string())
}
