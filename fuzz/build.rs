//! The dispatch targets compile the server's and the frontend's own modules
//! (those crates have no library): this lists the `mod NAME;` lines of each
//! binary's `main.rs` as `#[path]` modules in `OUT_DIR`, so a module added
//! there is picked up without editing the fuzz targets.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (krate, out) in [
        ("kvs-server", "server_modules.rs"),
        ("kvs-frontend", "frontend_modules.rs"),
    ] {
        let src = root.join("crates").join(krate).join("src");
        let main = src.join("main.rs");
        println!("cargo::rerun-if-changed={}", main.display());
        let text = std::fs::read_to_string(&main).unwrap_or_else(|e| panic!("cannot read {}: {e}", main.display()));
        let mut modules = String::new();
        for line in text.lines() {
            let Some(name) = line.strip_prefix("mod ").and_then(|rest| rest.trim().strip_suffix(';')) else {
                continue;
            };
            let file = src.join(format!("{name}.rs"));
            println!("cargo::rerun-if-changed={}", file.display());
            writeln!(modules, "#[path = {:?}]\nmod {name};", file.display().to_string()).expect("a String");
        }
        let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
        std::fs::write(Path::new(&out_dir).join(out), modules).expect("OUT_DIR is writable");
    }
}
