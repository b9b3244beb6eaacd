//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the migration files at compile time, and without this an
//! incremental build keeps serving the migrations it embedded last.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
