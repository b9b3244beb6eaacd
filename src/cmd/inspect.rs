//! `govtrust inspect`: explains a certificate, CRL or attestation event
//! against the profile (the analysis is `govtrust_pki::inspect`; this
//! module renders it and maps it to the exit status).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_pki::inspect::{CertReport, Finding, Report};

use crate::output::Output;

/// Runs `govtrust inspect FILE`: exit status 0 when every finding holds,
/// 1 when any does not (a stale CRL, a certificate outside the profile).
pub fn inspect(path: &Path, out: Output) -> Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report =
        govtrust_pki::inspect::inspect(&bytes).with_context(|| format!("{}", path.display()))?;
    out.emit(&report, || render(&report));
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cmd::EXIT_FAILURE)
    })
}

fn render_findings(text: &mut String, findings: &[Finding]) {
    for f in findings {
        text.push_str(&format!(
            "    [{}] {}\n",
            if f.ok { "ok" } else { "!!" },
            f.text
        ));
    }
}

fn render_cert(text: &mut String, c: &CertReport) {
    text.push_str(&format!(
        "{}\n  subject:   {}\n  issuer:    {}\n  serial:    {}\n  SHA-256:   {}\n  validity:  {} .. {}\n  key:       {}\n",
        c.role, c.subject, c.issuer, c.serial, c.sha256_fingerprint, c.not_before, c.not_after, c.public_key
    ));
    if !c.extended_key_usage.is_empty() {
        text.push_str(&format!(
            "  EKU:       {}\n",
            c.extended_key_usage.join(", ")
        ));
    }
    if !c.subject_alt_names.is_empty() {
        text.push_str(&format!(
            "  SAN:       {}\n",
            c.subject_alt_names.join(", ")
        ));
    }
    if let Some(d) = &c.device_id {
        text.push_str(&format!("  device:    {d}\n"));
    }
    if let Some(a) = &c.authority {
        text.push_str(&format!("  authority: {} ({})\n", a, a.id));
    }
    text.push_str("  profile:\n");
    render_findings(text, &c.profile);
}

fn render(report: &Report) -> String {
    let mut text = String::new();
    match report {
        Report::Certificates { certificates } => {
            for c in certificates {
                render_cert(&mut text, c);
            }
        }
        Report::Crl(c) => {
            text.push_str(&format!(
                "CRL\n  issuer:      {}\n  number:      {}\n  SHA-256:     {}\n  thisUpdate:  {}\n  nextUpdate:  {}\n  revoked:     {}\n  profile:\n",
                c.issuer,
                c.number.as_deref().unwrap_or("-"),
                c.sha256_fingerprint,
                c.this_update,
                c.next_update.as_deref().unwrap_or("-"),
                c.revoked
            ));
            render_findings(&mut text, &c.profile);
        }
        Report::AttestationEvent {
            state_key,
            size_bytes,
            content,
            certificates,
        } => {
            text.push_str(&format!(
                "io.govtrust.attestation event ({size_bytes} bytes of content, limit {})\n  state key: {state_key}\n  kind: {:?}, user {}, key {}{}\n  revoked: {}\n\n",
                govtrust_verifier::event::MAX_CONTENT_BYTES,
                content.kind,
                content.user_id,
                content.key,
                content.device_id.as_ref().map(|d| format!(", device {d}")).unwrap_or_default(),
                content.revoked.as_ref().map_or("no".to_owned(), |r| r.reason.clone()),
            ));
            for c in certificates {
                render_cert(&mut text, c);
            }
        }
    }
    text
}
