//! Test fixture: a throwaway Synapse homeserver on loopback — the
//! library's own launcher ([`govtrust_service::synapse`]), which installs Synapse
//! from PyPI into `target/synapse-venv` on first use.
//!
//! ```ignore
//! #[path = "support/synapse.rs"]
//! mod synapse;
//!
//! let hs = synapse::Synapse::new().await.expect("synapse");
//! let bot = hs.register("bot", "pw", false).await.expect("register");
//! ```
#![allow(unused_imports)]

pub use govtrust_service::synapse::{LoginSession, Synapse, SERVER_NAME};
