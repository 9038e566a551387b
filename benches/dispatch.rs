//! In-process no-op posts of one doc through a Deployment, beside a bare actix `Addr::send`
//! round trip to an actor on another Arbiter, measured in the same run.
//!
//! `cargo bench --bench dispatch`; figures are posts (or round trips) per second.

use std::time::Duration;

use actix::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla::actors::request::Request;
use flotilla::{Deployment, Doc, DocList};
use futures::StreamExt;

const POSTS: usize = 4096;

struct Pong;

impl Actor for Pong {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Pong {
    type Result = u64;
    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n + 1
    }
}

/// An actor on an Arbiter of its own, started from a System thread like flotilla's replicas.
fn bare_actor() -> Addr<Pong> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix_rt::System::new();
        let arbiter = actix_rt::Arbiter::new();
        let tx2 = tx.clone();
        arbiter.spawn_fn(move || {
            let _ = tx2.send(Pong.start());
        });
        let _ = sys.run();
    });
    rx.recv().expect("the bare actor started")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("in_process_noop");
    g.throughput(Throughput::Elements(POSTS as u64));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);

    let pong = bare_actor();
    for inflight in [1usize, 64] {
        g.bench_with_input(
            BenchmarkId::new("bare_actix_send", inflight),
            &inflight,
            |b, &inflight| {
                b.to_async(&rt).iter(|| {
                    let pong = pong.clone();
                    async move {
                        futures::stream::iter(0..POSTS as u64)
                            .map(|i| pong.send(Ping(i)))
                            .buffer_unordered(inflight)
                            .for_each(|r| {
                                r.expect("pong answers");
                                futures::future::ready(())
                            })
                            .await
                    }
                })
            },
        );
    }

    for replicas in [1i64, 3] {
        let dep = Deployment::new()
            .uses("Echo")
            .replicas(replicas)
            .start()
            .expect("start");
        let flow = dep.kernel();
        for inflight in [1usize, 64] {
            let id = BenchmarkId::new(format!("flotilla_{replicas}_replicas"), inflight);
            g.bench_with_input(id, &inflight, |b, &inflight| {
                b.to_async(&rt).iter(|| async {
                    futures::stream::iter(0..POSTS)
                        .map(|_| flow.call(Request::new("/", DocList::from(Doc::new()))))
                        .buffer_unordered(inflight)
                        .for_each(|r| {
                            r.expect("the post succeeds");
                            futures::future::ready(())
                        })
                        .await
                })
            });
        }
        dep.close();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
