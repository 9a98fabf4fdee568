//! `lienthong audit verify`: the embedded log of a data directory, or
//! every replica's chain in the shared store; prints what it found and what
//! to keep off the machine.

use super::AuditVerifyArgs;
use crate::audit::{ChainAnchor, Hash};
use crate::cmd::{self, DataDir, StoreChoice};
use crate::error::{Error, Result};

/// Verifies the log `args` name, printing the report; an error names the
/// first problem.
pub(super) fn verify(args: &AuditVerifyArgs) -> Result<()> {
    match &args.store.store {
        StoreChoice::Postgres(url) => verify_shared(args, url),
        StoreChoice::Embedded => verify_embedded(args),
    }
}

fn verify_embedded(args: &AuditVerifyArgs) -> Result<()> {
    let dir = DataDir::new(&args.dir.data_dir);
    let anchor = match &args.checkpoint[..] {
        [] => None,
        [one] if one.node.is_none() => Some(one.anchor),
        _ => {
            return Err(Error::Audit(
                "the embedded audit log is one chain: give one --checkpoint SEQ:HASH, without a node \
                 (NODE:SEQ:HASH is for --store)"
                    .into(),
            ));
        }
    };
    let (report, key) = cmd::audit_verify(&dir, args.public_key, anchor)?;
    for file in &report.set_aside {
        eprintln!(
            "warning: {} holds bytes the gateway found after the last whole record when it \
                 started (a write a crash cut short, or an edit) and moved out of the log",
            file.display()
        );
    }
    if !report.set_aside.is_empty() {
        return Err(Error::Audit(format!(
            "{} file(s) set aside in {}: a record in them may be missing from the chain \
                 until someone has looked; move them out of the audit directory once inspected",
            report.set_aside.len(),
            dir.audit().display()
        )));
    }
    if let Some(problem) = report.problem {
        return Err(Error::Audit(format!(
            "audit log {} failed verification: {problem}",
            dir.audit().display()
        )));
    }
    println!(
        "audit log verified: {} records, {} signed checkpoints",
        report.records, report.checkpoints
    );
    println!(
        "the last checkpoint covers record {}{}",
        report.checkpointed,
        match report.records - report.checkpointed {
            0 => String::new(),
            n => format!(" ({n} later records are chained but not yet signed)"),
        }
    );
    if let Some(hash) = report.checkpointed_hash {
        let hex = hex(&hash);
        println!("its hash                      {hex}");
        println!(
            "keep off the machine: --checkpoint {}:{hex} --public-key {key}",
            report.checkpointed
        );
    }
    println!("signing key (Ed25519, public) {key}");
    Ok(())
}

/// Every chain of the shared store at `url`.
fn verify_shared(args: &AuditVerifyArgs, url: &str) -> Result<()> {
    let dir = DataDir::new(&args.dir.data_dir);
    let mut anchors = Vec::with_capacity(args.checkpoint.len());
    for given in &args.checkpoint {
        let Some(node) = &given.node else {
            return Err(Error::Audit(
                "with --store, a --checkpoint names its chain: NODE:SEQ:HASH".into(),
            ));
        };
        anchors.push(ChainAnchor {
            node: node.clone(),
            seq: given.anchor.0,
            hash: given.anchor.1,
        });
    }
    let (reports, key) = cmd::audit_verify_shared(&dir, url, args.public_key, &anchors)?;
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.problem.is_some())
        .map(ToString::to_string)
        .collect();
    for report in &reports {
        println!("{report}");
    }
    if !failed.is_empty() {
        return Err(Error::Audit(format!(
            "the shared audit log failed verification: {}",
            failed.join("; ")
        )));
    }
    let records: u64 = reports.iter().map(|r| r.records).sum();
    println!(
        "audit log verified: {} chains, {records} records",
        reports.len()
    );
    for report in &reports {
        if let Some(hash) = report.checkpointed_hash {
            println!(
                "keep off the machine: --checkpoint {}:{}:{}",
                report.node,
                report.checkpointed,
                hex(&hash)
            );
        }
    }
    println!("signing key (Ed25519, public) {key}");
    Ok(())
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
