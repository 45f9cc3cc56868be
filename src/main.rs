//! The `broker` binary: `broker [-config=FILE | --config FILE]` runs the broker;
//! `broker dump-log <dir or file>` prints and validates segment files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::broker::Broker;
use broker::config::Config;
use tracing_subscriber::prelude::*;

enum Command {
    Run(Option<PathBuf>),
    DumpLog(PathBuf),
    Help,
}

const USAGE: &str = "usage: broker [-config=FILE | --config FILE]\n       broker dump-log <partition dir or .log/.index/.timeindex/.txnindex file>";

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut config = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if let Some(v) = a
            .strip_prefix("-config=")
            .or_else(|| a.strip_prefix("--config="))
        {
            config = Some(PathBuf::from(v));
        } else if a == "-config" || a == "--config" {
            i += 1;
            let v = args
                .get(i)
                .ok_or_else(|| format!("{a} needs a file name\n{USAGE}"))?;
            config = Some(PathBuf::from(v));
        } else if a == "dump-log" {
            let path = args
                .get(i + 1)
                .ok_or_else(|| format!("dump-log needs a path\n{USAGE}"))?;
            return Ok(Command::DumpLog(PathBuf::from(path)));
        } else if a == "-h" || a == "--help" || a == "help" {
            return Ok(Command::Help);
        } else {
            return Err(format!("unknown argument '{a}'\n{USAGE}"));
        }
        i += 1;
    }
    Ok(Command::Run(config))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::DumpLog(path)) => dump_log(&path),
        Ok(Command::Run(path)) => {
            let config = match path {
                Some(p) => match Config::load(&p) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("config error: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => Config::default(),
            };
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("broker failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn dump_log(path: &std::path::Path) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match broker::log::dump::dump_path(path, &mut out) {
        Ok(summary) if summary.errors.is_empty() => ExitCode::SUCCESS,
        Ok(summary) => {
            for e in &summary.errors {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("dump-log: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let _log_guard = init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("broker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (server.host / server.port)"))?;
        let broker = Broker::open(config).await?;
        broker.spawn_background_tasks();
        tracing::info!(%addr, node_id = broker.node_id, "broker started");
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        broker::server::run(listener, broker.clone(), rx).await;
        broker.shutdown().await;
        tracing::info!("broker stopped");
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(
    config: &Config,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Colour codes only when stderr is a terminal: redirected to a file or a pipe (scripts,
    // systemd, CI) the log stays plain text.
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let (file_layer, guard) = match &config.server.log_file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the log directory {}", dir.display())
                })?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open server.log_file {}", path.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(file);
            (
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(writer),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file_layer)
        .init();
    Ok(guard)
}
