//! Log lines that name the replica, the way Jina's do: `INFO  indexer/rep-0@4242 message`.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats an event as `LEVEL who@pid fields`, where `who` is the innermost replica span's name.
pub struct JinaFormat;

impl<S, N> FormatEvent<S, N> for JinaFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut who = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if span.name() == "replica"
                    && let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                {
                    let plain = strip_ansi(&fields.fields);
                    who = Some(plain.trim_start_matches("name=").to_owned());
                }
            }
        }
        let who = who.unwrap_or_else(|| "flotilla".to_owned());
        write!(
            w,
            "{:<5} {who}@{} ",
            event.metadata().level(),
            std::process::id()
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The text without terminal colour codes (`ESC [ … m`), which the span's fields carry when
/// colours are on.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What is logged when `RUST_LOG` is not set: flotilla's own lines from `info` up; openraft's
/// from `warn` (its `info` lines are its internal state, dozens at each start of a stateful
/// Deployment, and flotilla logs what a group does itself), except its core's warnings, which
/// are of stale messages it drops (a vote answered after its node became leader: a few at
/// every start, and nothing wrong). Its replication's warnings (a peer not reached) stay.
pub const DEFAULT_FILTER: &str = "info,openraft=warn,openraft::core::raft_core=error";

/// Logs to stderr at `RUST_LOG` (default [`DEFAULT_FILTER`]), in Jina's style; colours only
/// when stderr is a terminal.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(JinaFormat)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::JinaFormat;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_names_the_replica_like_jina() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || buf.clone())
            .event_format(JinaFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("replica", name = %"indexer/rep-0");
            span.in_scope(|| {
                tracing::info!("Indexing Document in index with 100 documents indexed")
            });
            tracing::warn!("outside any replica");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let pid = std::process::id();
        assert_eq!(
            text,
            format!(
                "INFO  indexer/rep-0@{pid} Indexing Document in index with 100 documents indexed\n\
                 WARN  flotilla@{pid} outside any replica\n"
            )
        );
    }

    #[test]
    fn by_default_openraft_logs_only_its_warnings() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(super::DEFAULT_FILTER))
            .with_writer(move || buf.clone())
            .with_ansi(false)
            .event_format(JinaFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "openraft::core::raft_core", vote = "T0-N0", "get_initial_state");
            tracing::warn!(target: "openraft::core::raft_core", "A message will be ignored");
            tracing::warn!(target: "openraft::replication", "error replication to target=1");
            tracing::info!(target: "flotilla_actors::raft::group", replicas = 3, "raft group formed");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let pid = std::process::id();
        assert_eq!(
            text,
            format!(
                "WARN  flotilla@{pid} error replication to target=1\n\
                 INFO  flotilla@{pid} raft group formed replicas=3\n"
            )
        );
    }
}
