//! `relais`: the one binary. Errors reach the user as one line on stderr.

mod audit;
mod bench;
mod bench_agents;
mod bench_campaign;
mod bench_inbound;
mod bench_smpp;
mod bench_soak;
mod bench_twilio;
mod bench_whatsapp;
mod bench_widget;
mod bootstrap;
mod config;
mod contacts;
mod data_dir;
mod nlu;
mod secrets;
mod send;
mod senders;
mod serve;
mod settings;
mod smsc_sim;
mod tenants;

use clap::{Parser, Subcommand};
use config::{Config, ServeArgs, StoreArgs};
use std::process::ExitCode;

// The send pipeline allocates and frees many short-lived buffers across threads (JSON
// bodies, bound SQL parameters); glibc's allocator spent a third of the A2P benchmark's
// CPU time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in its v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc hands freed pages back to the kernel 10 ms after they empty; under a steady
/// send load the same memory is freed and taken again every round, and with transparent
/// huge pages the kernel zeroed 2 MiB anew for each (a tenth of the SMPP benchmark's CPU
/// time in page faults). Ten seconds keeps the working set mapped while busy and still
/// returns it once the load stops. `MIMALLOC_PURGE_DELAY` in the environment wins.
fn keep_freed_pages_while_busy() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on its next purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "relais",
    version,
    about = "Self-hosted omnichannel conversational messaging"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP API, workers, optional SMPP listener).
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Manage contacts.
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Export a tenant's audit log (docs/audit.md).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Train and evaluate intent models.
    #[command(subcommand)]
    Nlu(nlu::NluCommand),
    /// Print the effective configuration (secrets redacted).
    Config(ServeArgs),
    /// Send one message through a running server.
    Send(send::SendArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run an SMSC simulator (receipts, failures, throttling, MO injection).
    SmscSim(smsc_sim::SmscSimArgs),
    /// Show or change a tenant's settings on a running server (quiet hours, sender
    /// rates, frequency cap, prices).
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Register and verify a tenant's senders on a running server (docs/trust.md).
    #[command(subcommand)]
    Senders(senders::SendersCommand),
}

/// With transparent huge pages the kernel zeroes 2 MiB at the first touch of each huge
/// page, also for a buffer that uses a few kilobytes of it: the send pipeline's large,
/// short-lived buffers (a 1,000-row statement, a batch body) made that a tenth of the
/// SMPP benchmark's CPU time and a third of its memory. Redis asks the same of its hosts.
fn without_transparent_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments and changes only this
    // process's memory policy; a refusal (an old kernel) leaves the default.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// What Relais creates (the database and its -wal and -shm, the key files) holds tenants'
/// data and secrets: it is for the user running Relais alone, 0600 and 0700.
fn private_files() {
    // SAFETY: umask only sets this process's file creation mask and cannot fail.
    unsafe { libc::umask(0o077) };
}

fn main() -> ExitCode {
    private_files();
    without_transparent_huge_pages();
    keep_freed_pages_while_busy();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&cli.store, &args)?;
            init_logging(&config.log);
            serve::run(config).await
        }
        Command::Config(args) => {
            print!("{}", Config::load(&cli.store, &args)?.render()?);
            Ok(())
        }
        Command::Tenants(cmd) => {
            tenants::run(cmd, Config::load(&cli.store, &ServeArgs::default())?).await
        }
        Command::Contacts(cmd) => {
            contacts::run(cmd, Config::load(&cli.store, &ServeArgs::default())?).await
        }
        Command::Audit(cmd) => {
            audit::run(cmd, Config::load(&cli.store, &ServeArgs::default())?).await
        }
        Command::Nlu(cmd) => {
            nlu::run(cmd, || Config::load(&cli.store, &ServeArgs::default())).await
        }
        Command::Send(args) => {
            let config = Config::load(&cli.store, &ServeArgs::default())?;
            send::run(args, &config.data_dir).await
        }
        Command::Settings(cmd) => {
            let config = Config::load(&cli.store, &ServeArgs::default())?;
            settings::run(cmd, &config.data_dir).await
        }
        Command::Senders(cmd) => {
            let config = Config::load(&cli.store, &ServeArgs::default())?;
            senders::run(cmd, &config.data_dir).await
        }
        Command::Bench(cmd) => {
            // Quiet unless asked: a bench prints its figures, and a log costs CPU.
            if let Ok(filter) = std::env::var("RELAIS_LOG") {
                init_logging(&filter);
            }
            let durability = match &cli.store.durability {
                Some(name) => relais_store::Durability::parse(name)?,
                None => relais_store::Durability::Normal,
            };
            bench::run(cmd, cli.store.database_url.clone(), durability).await
        }
        Command::SmscSim(args) => smsc_sim::run(args).await,
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a full disk holding the log, a failed write would be reported with
        // `eprintln!`, which panics when stderr fails: the request being served would die.
        .log_internal_errors(false)
        .try_init();
}
