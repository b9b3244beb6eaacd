//! Prometheus metrics at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::storage::{Store, WriteStats};

/// Label: the kind of attestation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `device` or `identity`.
    pub kind: String,
}

/// Label: a rejection's errcode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The `GT_…` errcode.
    pub reason: String,
}

/// Label: an issuing CA.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaLabel {
    /// The issuing CA ID.
    pub ca: String,
}

/// Label: a kind of store batch (only the store collector encodes it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabel {
    /// `challenges` or `audited`.
    batch: String,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// Successful enrollments by kind.
    pub enrollments: Family<KindLabel, Counter>,
    /// Rejected requests by errcode.
    pub rejections: Family<ReasonLabel, Counter>,
    /// Seconds from request to stored certificate.
    pub issuance_latency: Histogram,
    /// Age of the newest CRL by CA, seconds.
    pub crl_age: Family<CaLabel, Gauge<f64, AtomicU64>>,
    /// Unpublished outbox items.
    pub outbox_depth: Gauge,
    /// Certificates renewed automatically.
    pub renewals: Counter,
    /// Seconds until the root and each issuing CA expire.
    pub ca_expiry: Family<CaLabel, Gauge<f64, AtomicU64>>,
    /// Seconds until each served CRL's nextUpdate (negative: stale).
    pub crl_next_update: Family<CaLabel, Gauge<f64, AtomicU64>>,
    /// Seconds until the served TLS certificate expires.
    pub tls_expiry: Gauge<f64, AtomicU64>,
    /// TLS certificate renewals while running.
    pub tls_renewals: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("govtrust");
        let enrollments = Family::<KindLabel, Counter>::default();
        let rejections = Family::<ReasonLabel, Counter>::default();
        let issuance_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let crl_age = Family::<CaLabel, Gauge<f64, AtomicU64>>::default();
        let outbox_depth = Gauge::default();
        let renewals = Counter::default();
        let ca_expiry = Family::<CaLabel, Gauge<f64, AtomicU64>>::default();
        let crl_next_update = Family::<CaLabel, Gauge<f64, AtomicU64>>::default();
        let tls_expiry = Gauge::<f64, AtomicU64>::default();
        let tls_renewals = Counter::default();
        registry.register(
            "ca_expiry_seconds",
            "Seconds until the CA certificate expires (ca=root or an issuing CA ID)",
            ca_expiry.clone(),
        );
        registry.register(
            "crl_next_update_seconds",
            "Seconds until the served CRL's nextUpdate (negative once stale)",
            crl_next_update.clone(),
        );
        registry.register(
            "tls_certificate_expiry_seconds",
            "Seconds until the served TLS server certificate expires",
            tls_expiry.clone(),
        );
        registry.register(
            "tls_certificate_renewals",
            "TLS server certificate renewals while running",
            tls_renewals.clone(),
        );
        registry.register("enrollments", "Successful enrollments", enrollments.clone());
        registry.register(
            "rejections",
            "Rejected requests by errcode",
            rejections.clone(),
        );
        registry.register(
            "issuance_latency_seconds",
            "Time from enrollment request to stored certificate",
            issuance_latency.clone(),
        );
        registry.register("crl_age_seconds", "Age of the newest CRL", crl_age.clone());
        registry.register(
            "outbox_depth",
            "Attestation events not yet published",
            outbox_depth.clone(),
        );
        registry.register(
            "renewals",
            "Certificates renewed automatically",
            renewals.clone(),
        );
        Metrics {
            registry,
            enrollments,
            rejections,
            issuance_latency,
            crl_age,
            outbox_depth,
            renewals,
            ca_expiry,
            crl_next_update,
            tls_expiry,
            tls_renewals,
        }
    }
}

impl Metrics {
    /// Exports `store`'s group-commit counts (`store_commits_total`,
    /// `store_committed_changes_total`, by kind of batch), read at each
    /// scrape: their ratio is the changes per commit, which falls when the
    /// writer cannot batch (and each commit's fixed cost is paid more
    /// often).
    pub fn observe_store(&mut self, store: Store) {
        self.registry
            .register_collector(Box::new(StoreWrites(store)));
    }

    /// Counts a rejection.
    pub fn reject(&self, errcode: &str) {
        self.rejections
            .get_or_create(&ReasonLabel {
                reason: errcode.to_owned(),
            })
            .inc();
    }

    /// Sets the gauge of `ca` in `family`.
    pub(crate) fn set(family: &Family<CaLabel, Gauge<f64, AtomicU64>>, ca: &str, value: f64) {
        family
            .get_or_create(&CaLabel { ca: ca.to_owned() })
            .set(value);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Reads the store's write counts at each scrape: they live in the store's
/// writer, which knows nothing of Prometheus.
#[derive(Debug)]
struct StoreWrites(Store);

impl Collector for StoreWrites {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let WriteStats {
            challenges,
            audited,
        } = self.0.write_stats();
        encode_by_batch(
            &mut encoder,
            "store_commits",
            "Commits of the store's writers, by kind of batch",
            [challenges.commits, audited.commits],
        )?;
        encode_by_batch(
            &mut encoder,
            "store_committed_changes",
            "Changes those commits carried (÷ store_commits: changes per commit)",
            [challenges.changes, audited.changes],
        )
    }
}

/// One counter family labelled `batch="challenges"` and `batch="audited"`.
fn encode_by_batch(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    [challenges, audited]: [u64; 2],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (batch, value) in [("challenges", challenges), ("audited", audited)] {
        let label = BatchLabel {
            batch: batch.to_owned(),
        };
        ConstCounter::new(value).encode(family.encode_family(&label)?)?;
    }
    Ok(())
}
