//! Gives the shared library its soname, so that programs linked against
//! `libsesphr.so` record `libsesphr.so.0` and keep working across
//! compatible upgrades. With the `ctgrind` feature, also builds the valgrind
//! client-request shim (`ctgrind.c`) for the constant-time check
//! (`examples/ct_check.rs`); the library itself never links it.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsesphr.so.0");
    }
    #[cfg(feature = "ctgrind")]
    {
        println!("cargo:rerun-if-changed=ctgrind.c");
        cc::Build::new()
            .file("ctgrind.c")
            .warnings(true)
            .cargo_metadata(false)
            .compile("sesphr_ctgrind");
        let out = std::env::var("OUT_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-examples={out}/libsesphr_ctgrind.a");
    }
}
