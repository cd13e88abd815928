//! `lockmgr`: the server and its command-line client. `args.rs` is the command line;
//! `lockmgr server` runs a member through the server library, every other subcommand is
//! a client call through the client library (`commands.rs`).

mod args;
mod commands;
mod elect;
mod endpoint;
mod exit;
mod lock;
mod snapshot;
mod supervise;
mod views;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::{
    args::{Cli, Command, LogFormat, Output, ServerArgs, SnapshotCommand},
    commands::{Ctl, Timeouts},
    exit::{EXIT_FAILURE, EXIT_USAGE},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lockmgr: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// clap's answer to bad arguments (or `--help`, `--version`): as clap prints it, or with
/// `--output json` among the arguments, a usage error as one JSON object on stderr.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let args: Vec<String> = std::env::args().collect();
    let json = args.windows(2).any(|pair| pair[0] == "--output" && pair[1] == "json")
        || args.iter().any(|arg| arg == "--output=json");
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || informational {
        let _ = error.print();
        return ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { 0 });
    }
    let message = error.render().to_string();
    let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ");
    let json = serde_json::json!({
        "error": {"message": first, "code": null, "reason": "usage", "usage": message.trim_end()}
    });
    eprintln!("{json}");
    ExitCode::from(EXIT_USAGE)
}

async fn run(cli: Cli) -> ExitCode {
    let timeouts = Timeouts { dial: cli.dial_timeout, command: cli.command_timeout };
    let output = cli.output;
    // `fence check` answers 0 or 1: an error must not read as "not current".
    let failure = match cli.command {
        Command::Server(args) => return server(&args).await,
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "lockmgr", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Snapshot(SnapshotCommand::Status { file }) => {
            return offline(output, snapshot::status(&file));
        }
        Command::Snapshot(SnapshotCommand::Restore(args)) => {
            return offline(output, snapshot::restore(&args));
        }
        Command::Fence(_) => EXIT_USAGE,
        _ => EXIT_FAILURE,
    };
    match client(cli.endpoints, output, timeouts, cli.command).await {
        Ok(code) => code,
        Err(error) => {
            report(output, &error);
            ExitCode::from(failure)
        }
    }
}

/// An error on stderr: a line for people, or with `--output json` one object.
fn report(output: Output, error: &lockmgr_client::Error) {
    match output {
        Output::Human => eprintln!("lockmgr: {error}"),
        Output::Json => {
            let code = error.code().map(|code| format!("{code:?}"));
            let reason = error
                .reason()
                .map(|reason| commands::enum_name(reason.as_str_name(), "ERROR_REASON_"));
            let json = serde_json::json!({
                "error": {"message": error.to_string(), "code": code, "reason": reason}
            });
            eprintln!("{json}");
        }
    }
}

/// The answer of a command that needs no cluster: its view, or its error (status 1).
fn offline(output: Output, result: Result<impl crate::views::View, snapshot::Failure>) -> ExitCode {
    match result {
        Ok(view) => {
            match output {
                Output::Human => commands::write_stdout(&view.human()),
                Output::Json => commands::write_stdout(&commands::json_line(&view)),
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            match output {
                Output::Human => eprintln!("lockmgr: {message}"),
                Output::Json => eprintln!("{}", serde_json::json!({"error": {"message": message}})),
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn client(
    endpoints: Vec<String>,
    output: Output,
    timeouts: Timeouts,
    command: Command,
) -> Result<ExitCode, lockmgr_client::Error> {
    let ctl = Ctl::new(endpoints, output, timeouts)?;
    match command {
        Command::Server(_)
        | Command::Completion { .. }
        | Command::Snapshot(SnapshotCommand::Status { .. } | SnapshotCommand::Restore(_)) => {
            unreachable!("handled by run")
        }
        Command::Snapshot(SnapshotCommand::Save { file }) => ctl.save_snapshot(&file).await?,
        Command::Lock(args) => return ctl.lock(args).await,
        Command::Lease(command) => ctl.lease(command).await?,
        Command::Locks(command) => ctl.locks(command).await?,
        Command::Fence(command) => return ctl.fence(command).await,
        Command::Watch(args) => ctl.watch(args).await?,
        Command::Elect(args) => return ctl.elect(args).await,
        Command::Cluster(command) => ctl.cluster(command).await?,
        Command::Endpoint(command) => return ctl.endpoint(command).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn server(args: &ServerArgs) -> ExitCode {
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("lockmgr: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Whose directory it is, checked before anything is written to it.
    let data_dir = match lockmgr_server::identity::check(&config) {
        Ok(data_dir) => data_dir,
        Err(error) => {
            eprintln!("lockmgr: {error}");
            return ExitCode::from(2);
        }
    };
    if args.force_new_cluster && data_dir == lockmgr_server::identity::DataDir::Fresh {
        eprintln!(
            "lockmgr: {} holds no Raft state to recover: --force-new-cluster starts a survivor from its own data",
            config.data_dir.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let traces = match config.tracing.otlp_endpoint.as_str() {
        "" => None,
        endpoint => {
            match lockmgr_server::logging::otlp_provider(endpoint, &config.tracing.service_name) {
                Ok(provider) => Some(provider),
                Err(error) => {
                    eprintln!("lockmgr: {error}");
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
    };
    // The configuration validated the filter.
    let filter = EnvFilter::try_new(&config.log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let filter_handle =
        lockmgr_server::logging::init(filter, args.log_format == LogFormat::Json, traces.as_ref());
    let reload =
        Reload { handle: filter_handle, file: args.config.clone(), pinned: args.log.is_some() };
    lockmgr_server::logging::set_node_id(config.node_id);
    let result = async {
        lockmgr_server::identity::record(&config, &data_dir).map_err(|source| {
            lockmgr_server::NodeError::Storage {
                path: config.data_dir.display().to_string(),
                source,
            }
        })?;
        let disk = lockmgr_server::open_disk(&config.data_dir)?;
        if args.force_new_cluster {
            lockmgr_server::recovery::force_new_cluster(&config, &*disk)
                .map_err(|e| lockmgr_server::NodeError::ForceNewCluster(e.to_string()))?;
        }
        let node = lockmgr_server::start(config, disk).await?;
        lockmgr_server::serve(node, shutdown_signal(reload)).await
    }
    .await;
    if let Some(provider) = traces {
        let _ = provider.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lockmgr: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What SIGHUP reloads: the log filter, from the config file's `[log] filter`, unless
/// `--log` (or `LOCKMGR_LOG`) pinned it for the run.
struct Reload {
    handle: lockmgr_server::logging::FilterHandle,
    file: Option<std::path::PathBuf>,
    pinned: bool,
}

impl Reload {
    fn reload(&self) {
        if self.pinned {
            tracing::info!(
                "SIGHUP received: the log filter was given by --log or LOCKMGR_LOG and stays; set [log] filter in the config file to change it on SIGHUP"
            );
            return;
        }
        let Some(file) = &self.file else {
            tracing::info!("SIGHUP received: no config file to reload (--config); nothing changed");
            return;
        };
        let config = match lockmgr_server::config::ServerConfig::from_file(file) {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%error, "SIGHUP received: the config file does not load; nothing changed");
                return;
            }
        };
        match self.handle.set(&config.log.filter) {
            Ok(()) => {
                tracing::info!(filter = %config.log.filter, "SIGHUP received: log filter reloaded");
            }
            Err(error) => tracing::warn!(
                filter = %config.log.filter,
                %error,
                "SIGHUP received: the new log filter is not valid; the old one stays"
            ),
        }
    }
}

/// SIGTERM or Ctrl-C. SIGHUP does not stop the server (a terminal closing, or an operator
/// asking for a reload): it reloads what can be reloaded (`Reload`).
async fn shutdown_signal(reload: Reload) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            let _ = interrupt.await;
            return;
        };
        let mut hangup = signal(SignalKind::hangup()).ok();
        let hangups = async {
            match hangup.as_mut() {
                Some(hangup) => {
                    while hangup.recv().await.is_some() {
                        reload.reload();
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
            () = hangups => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        let _ = interrupt.await;
    }
}
