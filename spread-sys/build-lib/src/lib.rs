//! spread-sys's build script as a library: the very files of `spread-sys/build/`, compiled
//! here so that their tests run in the default workspace, on machines without a C Spread,
//! against the small header of our own in `spread-sys/tests/fake/`. Without the feature
//! `bindgen` it is the finder alone, which the test kit (spread-testkit) shares.

#[cfg(feature = "bindgen")]
#[path = "../../build/bindgen.rs"]
pub mod bindgen;
#[path = "../../build/env.rs"]
pub mod env;
#[path = "../../build/find.rs"]
pub mod find;
