//! Lets this crate's test binaries find the C library spread-sys linked, wherever it is
//! installed (spread-sys passes its directory as DEP_SPREAD_LIB_DIR).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_SPREAD_LIB_DIR");
    if let Some(dir) = std::env::var_os("DEP_SPREAD_LIB_DIR") {
        if std::env::var_os("DEP_SPREAD_STATIC").is_some_and(|s| s == "0") {
            println!(
                "cargo:rustc-link-arg=-Wl,-rpath,{}",
                std::path::Path::new(&dir).display()
            );
        }
    }
}
