//! Hands the target triple to the crate: the C Spread finder reads target-prefixed variables
//! and Debian's multiarch library directory by it, as spread-sys's build script does.

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=SPREAD_TESTKIT_TARGET={target}");
}
