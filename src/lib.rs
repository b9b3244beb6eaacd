//! # govtrust
//!
//! The operator CLI and the enrollment & attestation service of the govtrust
//! PKI. The binary (`src/main.rs`) is a thin shell over this library, so
//! integration tests and benchmarks drive the same code.
#![forbid(unsafe_code)]

pub mod agency;
pub mod cadir;
pub mod cli;
pub mod cmd;
pub mod matrix;
pub mod output;
pub mod pemfile;
pub mod service;
pub mod storage;
pub mod synapse;
