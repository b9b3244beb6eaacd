//! The wire contract of the govtrust service: what agencies and operators
//! send it, what the homeserver serves it, and the pure checks the service
//! runs on all of that before anything is stored or signed.
//!
//! It is its own crate, without the service's I/O (no matrix-sdk client,
//! no database, no HTTP server), for two kinds of users:
//!
//! * agency tools that call the API and want its exact types;
//! * the fuzz targets `enrollment_json` and `authority_import`, which reach
//!   every parser an untrusted party feeds — request JSON, authority import
//!   files, `/keys/query` objects, canonical JSON — in a build small enough
//!   for a CI smoke run.
//!
//! Modules: [`enrollment`] (request and response bodies of the enrollment
//! API), [`authority`] (the registry's records and their validation),
//! [`policy`] (which users an authority may enroll), [`import`] (the
//! `govtrust authority import` file), [`keys`] (Matrix signed JSON as
//! `/keys/query` serves it). One error type, [`Error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod authority;
pub mod enrollment;
mod error;
pub mod import;
pub mod keys;
pub mod policy;
pub mod pseudonym;

pub use error::Error;
