//! `airlock`: the console server, its client, the instance agent and the gateway, in one binary.
//! This file only wires the library crates to the command line.
//!
//! Exit status: 0 on success, 1 on failure, 2 on a usage error (clap's own, or an
//! [`airlock_os::UsageError`] a command returns).

mod access_key;
mod admin;
mod agent_cli;
mod cli;
mod client;
mod command_cli;
mod commands;
mod fleet;
mod gateway_cli;
mod gateway_config;
mod maintenance_window;
mod metrics_listen;
mod output;
mod roll_cli;
mod serve;
mod snapshot_policy;

use clap::Parser;
use cli::{Cli, Command, VaultCommand};

fn main() -> std::process::ExitCode {
    // clap exits with status 2 on usage errors, after printing what is wrong.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("airlock: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock: {e:#}");
            if e.downcast_ref::<airlock_os::UsageError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.output;
    let console = &cli.console;
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Login(args) => commands::login(console, args, output).await,
        Command::Logout => commands::logout(console).await,
        Command::Vault(VaultCommand::Rotate(args)) => {
            let report = serve::rotate(args).await?;
            output::print(
                output,
                &report,
                &["NEW KEY ID", "REWRAPPED", "ALREADY CURRENT"],
                || {
                    vec![vec![
                        report.new_key_id.clone(),
                        report.rewrapped.to_string(),
                        report.already_current.to_string(),
                    ]]
                },
            )
        }
        Command::Policy(cmd) if admin::policy_local(&cmd, output)? => Ok(()),
        Command::Gateway(args) => {
            gateway_cli::run(args, gateway_config::console_link(console)?).await
        }
        Command::Agent(args) => agent_cli::run(args, console, output == cli::Output::Json).await,
        // Fleet commands may run --direct, without a console.
        Command::Address(c) => fleet::run(console, fleet::FleetCommand::Address(c), output).await,
        Command::Eni(c) => fleet::run(console, fleet::FleetCommand::Eni(c), output).await,
        Command::SecurityGroup(c) => {
            fleet::run(console, fleet::FleetCommand::SecurityGroup(c), output).await
        }
        Command::KeyPair(c) => fleet::run(console, fleet::FleetCommand::KeyPair(c), output).await,
        Command::Volume(c) => fleet::run(console, fleet::FleetCommand::Volume(c), output).await,
        Command::Snapshot(c) => fleet::run(console, fleet::FleetCommand::Snapshot(c), output).await,
        Command::Image(c) => fleet::run(console, fleet::FleetCommand::Image(c), output).await,
        command => {
            let client = client::Client::new(console)?;
            match command {
                Command::Account(cmd) => commands::account(&client, cmd, output).await,
                Command::Deploy(args) => commands::deploy(&client, args, output).await,
                Command::Deployment(cmd) => commands::deployment(&client, cmd, output).await,
                Command::Instances(args) => commands::instances(&client, args, output).await,
                Command::Subnets(args) => commands::subnets(&client, args, output).await,
                Command::Instance(cmd) => commands::instance(&client, cmd, output).await,
                Command::Whoami => commands::whoami(&client, output).await,
                Command::User(cmd) => admin::user(&client, cmd, output).await,
                Command::AccessKey(cmd) => access_key::run(&client, cmd, output).await,
                Command::Policy(cmd) => admin::policy(&client, cmd, output).await,
                Command::Tag(cmd) => admin::tag(&client, cmd, output).await,
                Command::Audit(args) => admin::audit(&client, args, output).await,
                Command::GatewayConfig(cmd) => gateway_config::run(&client, cmd, output).await,
                Command::SnapshotPolicy(cmd) => snapshot_policy::run(&client, cmd, output).await,
                Command::Commands(cmd) => command_cli::run(&client, cmd, output).await,
                Command::MaintenanceWindow(cmd) => {
                    maintenance_window::run(&client, cmd, output).await
                }
                Command::Cluster(cli::ClusterCommand::Status) => {
                    commands::cluster_status(&client, output).await
                }
                Command::Serve(_)
                | Command::Login(_)
                | Command::Logout
                | Command::Vault(_)
                | Command::Gateway(_)
                | Command::Agent(_)
                | Command::Address(_)
                | Command::Eni(_)
                | Command::SecurityGroup(_)
                | Command::KeyPair(_)
                | Command::Volume(_)
                | Command::Snapshot(_)
                | Command::Image(_) => {
                    unreachable!("handled before a client is built")
                }
            }
        }
    }
}
