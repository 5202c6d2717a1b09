//! `ssb-node invite create|list|revoke`: through a running node's control
//! socket, or on the store when no node runs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use ssb_node::data_dir::DataDir;
use ssb_node::feed::json::Value;
use ssb_node::invite::host;
use ssb_node::muxrpc::Session;
use ssb_node::service::invites::{self, CreateOptions, InviteRow};
use ssb_node::store::now_ms;

use super::remote::settings;
use super::InviteCommand;

fn options(uses: Option<u32>, expires: Option<f64>, note: Option<String>) -> CreateOptions {
    CreateOptions {
        uses,
        expires_days: expires,
        note,
    }
}

/// Prints one invite as a line.
fn print_row(r: &InviteRow, out: &mut dyn Write) -> Result<()> {
    let expires = match r.expires {
        Some(ms) => format!("expires {}", when(ms)),
        None => "no expiry".to_owned(),
    };
    let mut line = format!(
        "{} {} {}/{} uses left, {}, created {}",
        r.id,
        r.state,
        r.uses_left,
        r.uses,
        expires,
        when(r.created),
    );
    if let Some(n) = &r.note {
        line.push_str(&format!(": {n}"));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

/// A time (ms since the epoch) as UTC `YYYY-MM-DD HH:MM`.
fn when(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn print_created(r: &InviteRow, out: &mut dyn Write) -> Result<()> {
    print_row(r, out)?;
    // The code is the last line, for scripts and for copying.
    writeln!(
        out,
        "{}",
        r.code.as_deref().context("the node's reply has no code")?
    )?;
    Ok(())
}

fn print_list(rows: &[InviteRow], json: bool, out: &mut dyn Write) -> Result<()> {
    if rows.is_empty() && !json {
        writeln!(out, "no invites")?;
    }
    for r in rows {
        if json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        } else {
            print_row(r, out)?;
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_str(&v.to_compact()).context("the node's reply is not an invite")
}

/// Through a running node.
pub async fn remote(command: InviteCommand, session: &Session, out: &mut dyn Write) -> Result<()> {
    match command {
        InviteCommand::Create {
            uses,
            expires,
            note,
        } => {
            let arg = options(uses, expires, note).to_value();
            let v = super::remote::call(session, &["invite", "create"], vec![arg]).await?;
            print_created(&decode(&v)?, out)
        }
        InviteCommand::List { json } => {
            let v = super::remote::call(session, &["invite", "list"], vec![]).await?;
            print_list(&decode::<Vec<InviteRow>>(&v)?, json, out)
        }
        InviteCommand::Revoke { id } => {
            let v = super::remote::call(session, &["invite", "revoke"], vec![Value::string(&id)])
                .await?;
            print_row(&decode(&v)?, out)
        }
    }
}

/// On the store, with no node running.
pub fn local(command: InviteCommand, data: &DataDir, out: &mut dyn Write) -> Result<ExitCode> {
    let store = data.open_store()?;
    match command {
        InviteCommand::Create {
            uses,
            expires,
            note,
        } => {
            let settings = settings(data, None)?;
            let keys = data.keys()?;
            let listen = host::configured_listen(&settings.listen)?;
            let (host, port) = host::code_address(settings.public_address.as_ref(), listen);
            let (code, record) = invites::create(
                &store,
                &keys.id(),
                host,
                port,
                &options(uses, expires, note),
            )?;
            let row = InviteRow {
                code: Some(code.text()),
                ..InviteRow::of(&record, now_ms())
            };
            print_created(&row, out)?;
        }
        InviteCommand::List { json } => print_list(&invites::list(&store)?, json, out)?,
        InviteCommand::Revoke { id } => print_row(&invites::revoke_row(&store, &id)?, out)?,
    }
    store.persist()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_000_000_000), "2026-11-30 00:53 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
