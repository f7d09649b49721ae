//! `cbor-bridge UPSTREAM`: the CloudWatch protocol relay of the operator's emulator tests, as a
//! process for the e2e cluster. Only because moto (5.2.5) lacks the protocol: aws-sdk-cloudwatch
//! speaks Smithy RPC v2 CBOR, which moto answers with 404, so e2e/up starts this relay in front
//! of moto and points halo's CloudWatch client at it (AWS_ENDPOINT_URL_CLOUDWATCH). Against
//! AWS nothing of this runs.
//!
//! Listens on 127.0.0.1 (a free port), prints its URL on the first line of stdout, and serves
//! until killed.

#[path = "../../../operator/tests/aws_support/cbor_bridge.rs"]
mod cbor_bridge;

use std::io::Write as _;

fn main() {
    let upstream = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| {
            eprintln!("usage: cbor-bridge UPSTREAM_URL (or AWS_ENDPOINT_URL)");
            std::process::exit(2);
        });
    let url = cbor_bridge::start(&upstream);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
