//! `CUDA_VISIBLE_DEVICES=RR…`: each replica gets its device round robin (seed 001's tables).

use std::sync::{Arc, Mutex};

use flotilla::Deployment;
use flotilla::actors::executor::factory;
use flotilla::actors::prelude::*;
use flotilla::config::CompileEnv;

fn devices(spec: &str, count: usize) -> Vec<String> {
    let g = Deployment::new()
        .replicas(5)
        .compile_env(CompileEnv {
            cuda_visible_devices: Some(spec.to_owned()),
            device_count: Some(count),
        })
        .graph()
        .unwrap();
    g.nodes[0]
        .deployment
        .contexts(0)
        .iter()
        .map(|c| c.env("CUDA_VISIBLE_DEVICES").unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn the_seeds_tables() {
    assert_eq!(devices("RR", 3), ["0", "1", "2", "0", "1"]);
    assert_eq!(devices("RR0:2", 3), ["0", "1", "0", "1", "0"]);
    assert_eq!(devices("RR1,3", 4), ["1", "3", "1", "3", "1"]);
    let uuids = "RRGPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5,GPU-0bbbbbbb-74d2-7297-d557-12771b6a79d5,\
                 GPU-0ccccccc-74d2-7297-d557-12771b6a79d5,GPU-0ddddddd-74d2-7297-d557-12771b6a79d5";
    assert_eq!(
        devices(uuids, 4),
        [
            "GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5",
            "GPU-0bbbbbbb-74d2-7297-d557-12771b6a79d5",
            "GPU-0ccccccc-74d2-7297-d557-12771b6a79d5",
            "GPU-0ddddddd-74d2-7297-d557-12771b6a79d5",
            "GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5",
        ]
    );
}

#[test]
fn without_rr_nothing_changes_and_a_bad_spec_is_an_error() {
    assert_eq!(devices("0,1", 3), ["-"; 5]);
    let err = Deployment::new()
        .name("enc")
        .replicas(2)
        .compile_env(CompileEnv {
            cuda_visible_devices: Some("RRx:2".into()),
            device_count: Some(2),
        })
        .graph()
        .unwrap_err();
    assert!(err.mentions("executor 'enc'"), "{err}");
    assert!(err.mentions("RRx:2"), "{err}");
}

#[test]
fn an_executors_env_overrides_the_process_and_replicas_see_their_device() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    struct Gpu;
    impl Executor for Gpu {
        fn requests(_: &mut Requests<Self>) {}
    }
    let dep = Deployment::new()
        .name("clip")
        .uses_factory(
            "Gpu",
            factory(move |ctx| {
                let dev = ctx.env("CUDA_VISIBLE_DEVICES").unwrap_or("-").to_owned();
                s.lock().unwrap().push((ctx.replica, dev));
                Ok(Gpu)
            }),
        )
        .replicas(5)
        .env("CUDA_VISIBLE_DEVICES", "RR")
        .compile_env(CompileEnv {
            cuda_visible_devices: None,
            device_count: Some(3),
        })
        .start()
        .unwrap();
    dep.close();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let want: Vec<(usize, String)> = [0, 1, 2, 0, 1]
        .iter()
        .enumerate()
        .map(|(r, d)| (r, d.to_string()))
        .collect();
    assert_eq!(seen, want);
}
