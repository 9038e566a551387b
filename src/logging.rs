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
                    who = Some(fields.fields.trim_start_matches("name=").to_owned());
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

/// Logs to stderr at `RUST_LOG` (default `info`), in Jina's style.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(JinaFormat)
        .try_init();
}
