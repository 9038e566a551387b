use flotilla_actors::prelude::*;

/// Returns the docs it gets, on every endpoint.
pub struct Echo;

impl Executor for Echo {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Echo, _: &mut Request, _: &Context| {});
        // A handler of nothing: callers run it themselves when a replica is idle.
        r.inline();
    }
}
