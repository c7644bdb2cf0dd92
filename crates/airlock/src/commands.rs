//! The client commands: each turns its arguments into one API call and prints the answer.

use crate::cli::{
    AccountAddArgs, AccountCommand, ConsoleArgs, CredentialsArg, DeployArgs, DeploymentCommand,
    InstanceCommand, InstancesArgs, LoginArgs, Output,
};
use crate::client::{self, Client, SavedLogin};
use crate::output::{or_dash, print};
use airlock_api::accounts::{AccountView, AddAccountRequest};
use airlock_api::deployments::{CredentialMode, DeployRequest, DeploymentPolicy, DeploymentView};
use airlock_api::instances::{InstanceActionRequest, InstanceList};
use airlock_api::session::LoginRequest;
use airlock_cloud::Tag;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use serde_json::json;
use std::io::{BufRead, IsTerminal};
use std::time::{Duration, Instant};

/// The first line of standard input, without its line ending; an empty line is refused.
pub fn read_stdin_line(what: &str) -> Result<secrecy::SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let value = line.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(secrecy::SecretString::from(value))
}

pub async fn login(console: &ConsoleArgs, args: LoginArgs, output: Output) -> Result<()> {
    if console.url().is_none() {
        bail!("give the console URL with --console or AIRLOCK_CONSOLE");
    }
    let password = read_stdin_line("password")?;
    let client = Client::new(console)?;
    let resp = client
        .login(&LoginRequest {
            user: args.user,
            password,
            otp: args.otp,
        })
        .await?;
    let path = client::save_login(&SavedLogin {
        console: client.base().to_owned(),
        token: resp.token,
        user: resp.user.clone(),
    })?;
    let summary = json!({"user": resp.user, "console": client.base(), "expires_at": resp.expires_at, "saved_to": path});
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        Output::Table => println!(
            "Logged in to {} as {} until {} (token saved to {})",
            client.base(),
            resp.user,
            resp.expires_at,
            path.display()
        ),
    }
    Ok(())
}

pub async fn logout(console: &ConsoleArgs) -> Result<()> {
    let client = Client::new(console)?;
    let result = client.logout().await;
    client::forget_login()?;
    Ok(result?)
}

pub async fn whoami(client: &Client, output: Output) -> Result<()> {
    let me = client.whoami().await?;
    print(output, &me, &["USER", "CONSOLE"], || {
        vec![vec![me.user.clone(), client.base().to_owned()]]
    })
}

/// `airlock cluster status`: nodes, then leases.
pub async fn cluster_status(client: &Client, output: Output) -> Result<()> {
    let status: airlock_api::cluster::ClusterStatus = client.get("/v1/cluster").await?;
    print(
        output,
        &status,
        &["NODE", "STATE", "ALIVE", "LAST HEARTBEAT", "URL", "LEASES"],
        || {
            status
                .nodes
                .iter()
                .map(|n| {
                    let leases: Vec<&str> = status
                        .leases
                        .iter()
                        .filter(|l| l.holder == n.id && !l.expired)
                        .map(|l| l.name.as_str())
                        .collect();
                    vec![
                        n.id.clone(),
                        n.state.clone(),
                        if n.alive { "yes" } else { "no" }.into(),
                        format!("{:.1} s ago", n.heartbeat_age_seconds),
                        n.url.clone(),
                        if leases.is_empty() {
                            "-".into()
                        } else {
                            leases.join(",")
                        },
                    ]
                })
                .collect()
        },
    )
}

fn account_rows(accounts: &[AccountView]) -> Vec<Vec<String>> {
    accounts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.region.clone(),
                a.access_key_id.clone(),
                a.aws_account_id.clone(),
                a.caller_arn.clone(),
                key_age(a.key_created_at.as_deref()),
                or_dash(&a.endpoint_url),
            ]
        })
        .collect()
}

const ACCOUNT_HEADERS: &[&str] = &[
    "NAME",
    "REGION",
    "ACCESS KEY ID",
    "AWS ACCOUNT",
    "CALLER",
    "KEY AGE",
    "ENDPOINT",
];

/// A key's age in days, from when IAM created it.
fn key_age(created: Option<&str>) -> String {
    created
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let days = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_days();
            format!("{days} d")
        })
        .unwrap_or_else(|| "-".into())
}

/// The deployment's credential mode, marked when it is the risky one.
fn credentials_cell(d: &DeploymentView) -> String {
    match d.risk {
        Some(_) => format!("{} (RISK)", d.spec.credentials.as_str()),
        None => d.spec.credentials.as_str().to_owned(),
    }
}

pub async fn account(client: &Client, cmd: AccountCommand, output: Output) -> Result<()> {
    match cmd {
        AccountCommand::Add(args) => account_add(client, args, output).await,
        AccountCommand::List => {
            let accounts = client.accounts().await?;
            print(output, &accounts, ACCOUNT_HEADERS, || {
                account_rows(&accounts)
            })
        }
        AccountCommand::Verify { name } => {
            let a = client.verify_account(&name).await?;
            print(output, &a, ACCOUNT_HEADERS, || {
                account_rows(std::slice::from_ref(&a))
            })
        }
        AccountCommand::RotateKey { name } => {
            eprintln!("rotating the key of {name}: creating a new key and waiting until AWS accepts it...");
            let r = client.rotate_key(&name).await?;
            print(
                output,
                &r,
                &["ACCOUNT", "OLD KEY (DELETED)", "NEW KEY", "ACCEPTED AFTER"],
                || {
                    vec![vec![
                        r.account.clone(),
                        r.old_access_key_id.clone(),
                        r.new_access_key_id.clone(),
                        format!("{} ms", r.propagation_ms),
                    ]]
                },
            )
        }
        AccountCommand::Remove { name } => {
            client.remove_account(&name).await?;
            print(output, &json!({"removed": name}), &["REMOVED"], || {
                vec![vec![name.clone()]]
            })
        }
    }
}

async fn account_add(client: &Client, args: AccountAddArgs, output: Output) -> Result<()> {
    let secret_access_key = read_stdin_line("secret access key")?;
    let a = client
        .add_account(&AddAccountRequest {
            name: args.name,
            region: args.region,
            endpoint_url: args.endpoint_url,
            access_key_id: args.access_key_id,
            secret_access_key,
            role_arn: args.role_arn,
            external_id: args.external_id,
        })
        .await?;
    print(output, &a, ACCOUNT_HEADERS, || {
        account_rows(std::slice::from_ref(&a))
    })
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("cli-{}", hex::encode(bytes))
}

/// Retries a call while the console is unreachable (restarting), up to `deadline`.
async fn retrying<T, F, Fut>(what: &str, deadline: Instant, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut warned = false;
    loop {
        match call().await {
            Err(e) if Client::is_unreachable(&e) && Instant::now() < deadline => {
                if !warned {
                    eprintln!("{e}; retrying {what}…");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

pub async fn deploy(client: &Client, args: DeployArgs, output: Output) -> Result<()> {
    let user_script = match &args.user_script {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read --user-script {} (it must be a UTF-8 text file)",
                path.display()
            )
        })?),
        None => None,
    };
    let tasks = json_list_file("--tasks", args.tasks.as_deref(), "boot tasks")?;
    let policy_statements = json_list_file(
        "--policy-statements",
        args.policy_statements.as_deref(),
        "IAM statements",
    )?;
    let credentials = match args.credentials {
        CredentialsArg::Scoped => CredentialMode::Scoped,
        CredentialsArg::Bootstrap => CredentialMode::Bootstrap,
        CredentialsArg::Account => CredentialMode::Account,
        CredentialsArg::None => CredentialMode::None,
        CredentialsArg::Proxy => CredentialMode::Proxy,
    };
    if args.credentials == CredentialsArg::Account {
        eprintln!("warning: --credentials account puts the account's long-term key in every instance's user data; prefer scoped (the default)");
    }
    // The tasks go as the file has them: the console checks them and names the field at fault.
    let request: DeployRequest<serde_json::Value> = DeployRequest {
        client_token: Some(args.client_token.clone().unwrap_or_else(random_token)),
        account: args.account,
        image_id: args.image,
        instance_type: args.instance_type,
        count: args.count,
        subnet_id: args.subnet,
        security_group_ids: args.security_groups,
        key_name: args.key_name,
        tags: args.tags.iter().map(|(k, v)| Tag::new(k, v)).collect(),
        user_script,
        metadata_hop_limit: args.metadata_hop_limit,
        tasks,
        credentials,
        credentials_duration_seconds: args.credentials_duration,
        policy_statements,
        availability_zones: args.availability_zones,
        tenancy: args.tenancy.map(|t| match t {
            crate::cli::TenancyArg::Default => airlock_cloud::Tenancy::Default,
            crate::cli::TenancyArg::Dedicated => airlock_cloud::Tenancy::Dedicated,
        }),
        placement_group: args.placement_group,
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    // The same client token on every retry: the console answers with the deployment it made.
    let dep = retrying("the deployment", deadline, || async {
        Ok(client.deploy(&request).await?)
    })
    .await?;
    let dep = if args.wait {
        wait(client, dep, deadline, output).await?
    } else {
        dep
    };
    finish(dep, output)
}

/// The items of a file holding a JSON list (none when no file is given).
fn json_list_file(
    flag: &str,
    path: Option<&std::path::Path>,
    what: &str,
) -> Result<Vec<serde_json::Value>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{flag} {} is not JSON", path.display()))?;
    match value {
        serde_json::Value::Array(items) => Ok(items),
        _ => bail!("{flag} {} must hold a JSON list of {what}", path.display()),
    }
}

fn finish(dep: DeploymentView, output: Output) -> Result<()> {
    print_deployment(&dep, output)?;
    if dep.state == "failed" {
        bail!(
            "deployment {} failed: {}",
            dep.id,
            dep.error.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(())
}

/// Polls a deployment until it settles, with a progress bar on a terminal.
async fn wait(
    client: &Client,
    mut dep: DeploymentView,
    deadline: Instant,
    output: Output,
) -> Result<DeploymentView> {
    let total = u64::try_from(dep.count).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() && output == Output::Table {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} running ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(dep.id.clone());
    let mut last_state = String::new();
    loop {
        let running = dep
            .instances
            .iter()
            .filter(|i| i.state == "running")
            .count();
        bar.set_position(u64::try_from(running).unwrap_or(0));
        if bar.is_hidden() && dep.state != last_state {
            eprintln!("{}: {} ({running}/{total} running)", dep.id, dep.state);
        }
        last_state.clone_from(&dep.state);
        if dep.state == "running" || dep.state == "failed" {
            bar.finish_and_clear();
            return Ok(dep);
        }
        if Instant::now() >= deadline {
            bar.abandon();
            bail!(
                "gave up waiting for deployment {} after the timeout; it is {}",
                dep.id,
                dep.state
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let id = dep.id.clone();
        dep = retrying("the wait", deadline, || async {
            Ok(client.deployment(&id).await?)
        })
        .await?;
    }
}

fn print_deployment(dep: &DeploymentView, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(dep)?),
        Output::Table => {
            println!(
                "Deployment {}  account {}  state {}  count {}",
                dep.id, dep.account, dep.state, dep.count
            );
            if let Some(e) = &dep.error {
                println!("Error: {e}");
            }
            println!("Credentials {}", dep.spec.credentials.as_str());
            if let Some(risk) = &dep.risk {
                println!("RISK: {risk}");
            }
            let rows: Vec<Vec<String>> = dep
                .instances
                .iter()
                .map(|i| {
                    vec![
                        i.instance_id.clone(),
                        i.state.clone(),
                        or_dash(&i.private_ip),
                        or_dash(&i.public_ip),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print!(
                    "{}",
                    crate::output::table(&["INSTANCE", "STATE", "PRIVATE IP", "PUBLIC IP"], &rows)
                );
            }
        }
    }
    Ok(())
}

pub async fn deployment(client: &Client, cmd: DeploymentCommand, output: Output) -> Result<()> {
    match cmd {
        DeploymentCommand::List => deployment_list(client, output).await,
        DeploymentCommand::Show { id } => print_deployment(&client.deployment(&id).await?, output),
        DeploymentCommand::Policy { id } => {
            print_policy(&client.deployment_policy(&id).await?, output)
        }
        DeploymentCommand::Revoke { id } => {
            let r = client.revoke(&id).await?;
            print(output, &r, &["DEPLOYMENT", "REVOKED SECRETS"], || {
                vec![vec![r.deployment_id.clone(), r.revoked.to_string()]]
            })
        }
        DeploymentCommand::Roll {
            id,
            image,
            instance_type,
            batch,
            health,
            health_timeout,
            dry_run,
            resume,
            abort,
            wait: should_wait,
        } => {
            let roll = match (image, resume, abort) {
                (_, true, _) => client.control_roll(&id, "resume").await?,
                (_, _, true) => client.control_roll(&id, "abort").await?,
                (Some(image_id), _, _) => {
                    let req = airlock_api::rolls::RollRequest {
                        image_id,
                        instance_type,
                        batch: Some(batch),
                        health: Some(health),
                        health_timeout_seconds: Some(health_timeout),
                        dry_run,
                    };
                    client.roll(&id, &req).await?
                }
                (None, false, false) => bail!("give --image (or --resume or --abort)"),
            };
            crate::roll_cli::report(client, roll, should_wait && !dry_run, output).await
        }
        DeploymentCommand::RollStatus { id } => {
            let roll = client.roll_status(&id).await?;
            crate::roll_cli::report(client, roll, false, output).await
        }
        DeploymentCommand::Scale {
            id,
            count,
            wait: should_wait,
            timeout,
        } => {
            let dep = client.scale(&id, count).await?;
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let dep = if should_wait {
                wait(client, dep, deadline, output).await?
            } else {
                dep
            };
            finish(dep, output)
        }
    }
}

async fn deployment_list(client: &Client, output: Output) -> Result<()> {
    let deps = client.deployments().await?;
    let headers = [
        "ID",
        "ACCOUNT",
        "STATE",
        "COUNT",
        "IMAGE",
        "CREDENTIALS",
        "CREATED BY",
        "CREATED",
    ];
    print(output, &deps, &headers, || {
        deps.iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.account.clone(),
                    d.state.clone(),
                    d.count.to_string(),
                    d.spec.image_id.clone(),
                    credentials_cell(d),
                    d.created_by.clone(),
                    d.created_at.clone(),
                ]
            })
            .collect()
    })
}

fn print_policy(p: &DeploymentPolicy, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(p)?),
        Output::Table => {
            println!(
                "# {} credentials, issued for {} s at a time",
                p.credentials.as_str(),
                p.duration_seconds
            );
            println!("{}", serde_json::to_string_pretty(&p.policy)?);
        }
    }
    Ok(())
}

pub async fn instances(client: &Client, args: InstancesArgs, output: Output) -> Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &args.account {
        query.push(("account", a.clone()));
    }
    if let Some(d) = &args.deployment {
        query.push(("deployment", d.clone()));
    }
    for (k, v) in &args.tags {
        query.push(("tag", format!("{k}={v}")));
    }
    for f in &args.filters {
        query.push(("filter", f.clone()));
    }
    let status = args.status || args.watch;
    if status {
        query.push(("status", "true".into()));
    }
    if args.watch {
        return watch_instances(client, &query, args.interval, output).await;
    }
    let list = client.instances(&query).await?;
    print(output, &list, &instance_headers(status), || {
        instance_rows(&list, status)
    })
}

/// `airlock subnets`: `GET /v1/subnets`, a subnet a row.
pub async fn subnets(client: &Client, args: crate::cli::SubnetsArgs, output: Output) -> Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &args.account {
        query.push(("account", a.clone()));
    }
    for (k, v) in &args.tags {
        query.push(("tag", format!("{k}={v}")));
    }
    for f in &args.filters {
        query.push(("filter", f.clone()));
    }
    let list: airlock_console::api::FleetList = client.get_query("/v1/subnets", &query).await?;
    const COLUMNS: [(&str, &str); 7] = [
        ("ACCOUNT", "account"),
        ("SUBNET", "subnet_id"),
        ("ZONE", "availability_zone"),
        ("CIDR", "cidr_block"),
        ("FREE", "available_ip_address_count"),
        ("VPC", "vpc_id"),
        ("DEFAULT", "default_for_az"),
    ];
    let headers = COLUMNS.map(|(h, _)| h);
    print(output, &list.items, &headers, || {
        list.items
            .iter()
            .map(|s| {
                COLUMNS
                    .iter()
                    .map(|(_, k)| crate::fleet::listing::text(s, k))
                    .collect()
            })
            .collect()
    })
}

fn instance_headers(status: bool) -> Vec<&'static str> {
    let mut h = vec!["ACCOUNT", "INSTANCE", "STATE"];
    if status {
        h.extend(["SYSTEM CHECK", "INSTANCE CHECK"]);
    }
    h.extend(["TYPE", "PRIVATE IP", "PUBLIC IP", "TAGS"]);
    h
}

fn instance_rows(list: &InstanceList, status: bool) -> Vec<Vec<String>> {
    list.instances
        .iter()
        .map(|ai| {
            let i = &ai.instance;
            let tags: Vec<String> = i
                .tags
                .iter()
                .map(|t| format!("{}={}", t.key, t.value))
                .collect();
            let mut row = vec![ai.account.clone(), i.instance_id.clone(), i.state.clone()];
            if status {
                let s = ai.status.as_ref();
                row.push(or_dash(&s.and_then(|s| s.system_status.clone())));
                row.push(or_dash(&s.and_then(|s| s.instance_status.clone())));
            }
            row.extend([
                or_dash(&i.instance_type),
                or_dash(&i.private_ip),
                or_dash(&i.public_ip),
                tags.join(","),
            ]);
            row
        })
        .collect()
}

/// `instances --watch`: the list redrawn in place on a terminal (a new table per change
/// otherwise), or one JSON line per changed instance; until Ctrl-C.
async fn watch_instances(
    client: &Client,
    query: &[(&str, String)],
    interval: f64,
    output: Output,
) -> Result<()> {
    if !(0.2..=300.0).contains(&interval) {
        bail!("--interval {interval} is not between 0.2 and 300 seconds");
    }
    let terminal = std::io::stdout().is_terminal();
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut last_table = String::new();
    loop {
        let list = client.instances(query).await?;
        match output {
            Output::Json => {
                for ai in &list.instances {
                    let line = serde_json::to_string(ai)?;
                    let key = format!("{}/{}", ai.account, ai.instance.instance_id);
                    if seen.get(&key) != Some(&line) {
                        println!("{line}");
                        seen.insert(key, line);
                    }
                }
            }
            Output::Table => {
                let body =
                    crate::output::table(&instance_headers(true), &instance_rows(&list, true));
                if terminal {
                    // Home the cursor and clear the screen, then draw: the list refreshes in place.
                    print!(
                        "\x1b[H\x1b[2J{}  (every {interval} s, Ctrl-C to stop)\n\n{body}",
                        chrono::Utc::now().format("%H:%M:%S")
                    );
                } else if body != last_table {
                    println!(
                        "{}",
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    print!("{body}");
                }
                last_table = body;
            }
        }
        std::io::Write::flush(&mut std::io::stdout())?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub async fn instance(client: &Client, cmd: InstanceCommand, output: Output) -> Result<()> {
    let (action, ids) = match cmd {
        InstanceCommand::Start(ids) => ("start", ids),
        InstanceCommand::Stop(ids) => ("stop", ids),
        InstanceCommand::Reboot(ids) => ("reboot", ids),
        InstanceCommand::Terminate(ids) => ("terminate", ids),
    };
    let account = account_or_only(client, ids.account).await?;
    let request = InstanceActionRequest {
        account,
        instance_ids: ids.ids,
    };
    let resp = client.instance_action(action, &request).await?;
    print(
        output,
        &resp,
        &["ACTION", "INSTANCES", "AWS REQUEST ID"],
        || {
            vec![vec![
                resp.action.clone(),
                resp.instance_ids.join(","),
                or_dash(&resp.aws_request_id),
            ]]
        },
    )
}

/// The given account, or the console's only account when none is given.
pub async fn account_or_only(client: &Client, account: Option<String>) -> Result<String> {
    if let Some(a) = account {
        return Ok(a);
    }
    let accounts = client.accounts().await?;
    match accounts.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => bail!("the console has no account; add one with `airlock account add`"),
        _ => bail!("the console has several accounts: pass --account NAME"),
    }
}
