//! The `lel-host` binary: parse the command line, run it, map the outcome to
//! an exit code (0 fine, 1 something was rejected or failed). Error chains
//! are printed with `{:#}`. Runs on the main thread, which becomes the
//! control loop of `run`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEL_LOG")
                // jack-sys says at info level that it loads libjack.
                .unwrap_or_else(|_| "info,jack_sys=warn".into()),
        )
        .with_writer(lel_host::log_writer)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .without_time()
        .init();
    let cli = lel_host::Cli::parse();
    match lel_host::run(cli) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
