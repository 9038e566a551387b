use std::time::Duration;

use flotilla_actors::prelude::*;
use serde::Deserialize;

/// The seed's bottleneck demo: `/slow` blocks its replica for `slow_ms` (Jina's `time.sleep`),
/// `/fast` returns at once. Each doc gets a `served_by` tag naming the replica.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowFast {
    pub slow_ms: u64,
}

impl Default for SlowFast {
    fn default() -> Self {
        SlowFast { slow_ms: 300 }
    }
}

impl Executor for SlowFast {
    fn requests(r: &mut Requests<Self>) {
        r.on("/slow", SlowFast::slow);
        r.on("/fast", SlowFast::fast);
    }
}

impl SlowFast {
    fn slow(&mut self, req: &mut Request, ctx: &Context) {
        std::thread::sleep(Duration::from_millis(self.slow_ms));
        tag(req, ctx);
    }

    fn fast(&mut self, req: &mut Request, ctx: &Context) {
        tag(req, ctx);
    }
}

fn tag(req: &mut Request, ctx: &Context) {
    for d in req.docs.iter_mut() {
        d.tags_mut().insert(
            "served_by".into(),
            Value::from(ctx.runtime_name.to_string()),
        );
    }
}
