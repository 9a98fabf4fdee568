//! Integration tests of the adapters: the SIM-verification job against a
//! real gateway on 127.0.0.1:0 over mutual TLS, the real `lienthong-adapter`
//! binary killed and resumed, one adapter run alone through the real
//! binary, the conformance kit against every shipped adapter and against
//! the Python reference adapter and its broken variants, and the compose
//! file's adapter services run through the real binary. The sector adapters with the gateway and
//! RabbitMQ are tested end to end in `tests/`.

mod alone;
mod conformance;
mod docker;
mod sim_verify;

/// Runs `command` to its end, as `Command::output` does, but kills it and
/// panics if it is still running after `within`: a test never hangs on a
/// child process.
async fn output_within(
    command: std::process::Command,
    within: std::time::Duration,
) -> std::process::Output {
    let shown = format!("{command:?}");
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    tokio::time::timeout(within, command.output())
        .await
        .unwrap_or_else(|_| panic!("{shown} still running after {within:?}"))
        .unwrap_or_else(|e| panic!("{shown} does not start: {e}"))
}
