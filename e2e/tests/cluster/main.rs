//! halo end to end, against the real kube-apiserver, controller manager, scheduler and
//! simulated nodes that `e2e/up` started. Run by `scripts/test` with `--test-threads=1`:
//! the zone-failure and crash tests disturb the whole cluster.
//!
//! One test binary; the scenarios live in a file per theme and are listed here in the order
//! they run. libtest runs the tests of a binary sorted by name, so each is named `sNN_…`
//! with two digits: the list below is also the order of `cargo test -p halo-e2e -- --list`.

mod architecture;
mod data;
mod dns;
mod failures;
mod lifecycle;
mod tenancy;

/// One `#[tokio::test]` per `module::sNN_name`, named `sNN_name`, that runs that scenario.
macro_rules! scenarios {
    ($($module:ident :: $test:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() -> anyhow::Result<()> {
            $module::$test().await
        }
    )*};
}

scenarios! {
    lifecycle::s01_small_sample_converges,
    lifecycle::s02_scale_rollout_and_prune,
    lifecycle::s03_bad_specs_are_refused_by_the_api_server,
    lifecycle::s04_delete_removes_all_children,
    data::s05_data_sample_converges_against_the_emulator,
    lifecycle::s06_steady_state_makes_zero_writes,
    failures::s07_operator_survives_kill_9,
    failures::s08_leader_election_hands_over,
    failures::s09_zone_failure_and_recovery,
    dns::s10_dns_record_follows_the_alb_and_goes_with_the_app,
    architecture::s11_full_architecture_converges_and_deletes_by_policy,
    tenancy::s12_tenants_stay_within_their_policy,
}
