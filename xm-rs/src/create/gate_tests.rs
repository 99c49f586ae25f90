//! Builds in one process run one at a time (the kernel buffers of several at once exhausted a
//! small dom0); a waiting create's build starts as soon as the running one is done.

use std::sync::mpsc;
use std::time::Duration;

use hypervisor::{Hypervisor, SimHypervisor};

use super::real::{build_domain, BUILD_GATE};
use crate::test_support::{config, kernel_in, Scratch};

#[test]
fn a_build_waits_while_another_holds_the_build_gate() {
    let scratch = Scratch::new("build-gate");
    let kernel = kernel_in(scratch.path());
    let config = config(&format!(
        "name = 'gated'\nmemory = 32\nkernel = '{}'\n",
        kernel.display()
    ));
    let hv = SimHypervisor::new();

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let held = BUILD_GATE.lock().expect("gate");
        scope.spawn(|| {
            let built = build_domain(&hv, &config, None);
            done_tx.send(built.map(|b| b.domid)).expect("report");
        });
        assert!(
            done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a build ran while another held the gate"
        );
        drop(held);
        let domid = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the build went ahead once the gate was free")
            .expect("the build succeeded");
        assert!(hv.domain_info(domid).expect("domain exists").paused);
    });
}
