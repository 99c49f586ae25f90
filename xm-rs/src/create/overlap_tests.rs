//! The domain's layout and devices are set up while its memory is built (dom0's backends
//! work meanwhile), and a build that fails after that leaves nothing behind.

use hypervisor::{Hypervisor, SimHypervisor};

use super::*;
use crate::test_support::{config, dom0_store, kernel_in, only_dom0_nodes, FakeDom0, Scratch};

#[test]
fn a_build_failing_after_the_devices_were_set_up_rolls_them_back() {
    let scratch = Scratch::new("overlap");
    let kernel = kernel_in(scratch.path());
    let image = scratch.path().join("disk.img");
    std::fs::write(&image, [0u8; 512]).expect("image");
    let images_under: &'static str = Box::leak(scratch.path().display().to_string().into());
    let dom0 = FakeDom0 {
        images_under: Some(images_under),
        bridges: vec!["xenbr0"],
        netback_creates_vifs: true,
        ..FakeDom0::default()
    };
    // The synthetic kernel loads at 16 MiB: 16 MiB of memory cannot hold it, which the
    // build finds out only once it lays the domain out.
    let cfg = config(&format!(
        "name = 'toosmall'\nmemory = 16\nkernel = '{}'\n\
         disk = ['file:{},xvda,w']\nvif = ['bridge=xenbr0']\n",
        kernel.display(),
        image.display()
    ));
    let hv = SimHypervisor::new();
    let store = dom0_store();

    let err = create_domain(&hv, &store, &dom0, &cfg, &WireOptions::default())
        .expect_err("the guest does not fit");

    assert!(
        matches!(
            err,
            CreateError::Build(domain_builder::BuildError::TooBig { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        dom0.logged("attach"),
        ["/dev/loop0"],
        "the disk was set up first"
    );
    assert_eq!(dom0.logged("detach"), ["/dev/loop0"], "and released again");
    assert!(dom0.attached.borrow().is_empty());
    assert_eq!(only_dom0_nodes(&store), Vec::<String>::new());
    assert_eq!(
        hv.list_domains().expect("list").len(),
        1,
        "only dom0 is left"
    );
}
