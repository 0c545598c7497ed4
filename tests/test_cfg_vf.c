/* test_cfg_vf.c - SR-IOV VF pools in the cfg model: errors that name the
 * place, pools from the defaults, shared PFs, hand-picked VFs with MACs and
 * VLANs, VF lists and exclusions. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/util.h"
#include "cfg_fx.h"
#include "testutil.h"

Test(vf_pool, errors_name_the_place)
{
    cfx_load_err("[vm0]\nvf_pool = name=net1\n", F ":2:11: error: vf_pool: expected name=POOL,pf=PF1 PF2 in each group");
    cfx_load_err("[vm0]\nvf_pool = pf=ens1f0\n", F ":2:11: error: vf_pool: expected name=POOL,pf=PF1 PF2 in each group");
    cfx_load_err("[vm0]\nvf_pool = name=net 1,pf=ens1f0\n",
             F ":2:16: error: vf_pool name: expected a pool name of letters, digits, '_', '.' and '-' (at most 63), got 'net 1'");
    cfx_load_err("[vm0]\nvf_pool = name=net1,pf=\n", F ":2:24: error: vf_pool pf: expected PF netdev names separated by spaces, got ''");
    cfx_load_err("[vm0]\nvf_pool = name=net1,pf=ens1f0 ens/1\n",
             F ":2:31: error: vf_pool pf: expected PF netdev names (at most 15 letters, digits, '_', '.', '-') separated by spaces, got 'ens/1'");
    cfx_load_err("[vm0]\nvf_pool = name=net1,pf=ens1f0 a23456789012345x\n",
             F ":2:31: error: vf_pool pf: expected PF netdev names (at most 15 letters, digits, '_', '.', '-') separated by spaces, got 'a23456789012345x'");
    cfx_load_err("[vm0]\nvf_pool = name=net1,pf=ens1f0  ens1f0\n", F ":2:32: error: vf_pool pf: PF ens1f0 is listed twice");
    cfx_load_err("[vm0]\nvf_pool =\n    name=net1,pf=a\n    name=net1,pf=b\n",
             F ":4:10: error: vf_pool: pool 'net1' is defined twice; first at " F ":3:10");
    /* devices */
    cfx_load_err("[vm0]\ndevice = driver=vfio-pci,opt_pool=net1\n",
             F ":2:35: error: device vfio-pci: opt_pool=net1 names no vf_pool; expected a vf_pool = name=net1,pf=PF... key (in the VM's section or the defaults' [KVM])");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0;name=b,pf=p1\ndevice = driver=pci-assign,opt_pool=c\n",
             F ":3:37: error: device pci-assign: opt_pool=c names no vf_pool; expected one of: a, b");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0\ndevice = driver=vfio-pci,opt_host=07:10.0,opt_pool=a\n",
             F ":3:43: error: device vfio-pci: give opt_host= or opt_pool=, not both");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0\ndevice = driver=vfio-pci,opt_pool=a b\n",
             F ":3:35: error: device opt_pool: expected a vf_pool name, got 'a b'");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0\ndevice = driver=vfio-pci,opt_pool=a,opt_mac=01:00:00:00:00:01\n",
             F ":3:45: error: device opt_mac: expected a unicast MAC address (first octet even, not all zero), got '01:00:00:00:00:01'");
}

Test(vf_pool, pools_from_the_defaults_and_the_needs)
{
    struct cfg_vm *vm;
    int r = cfx_load("[vm0]\n"
                 "device =\n"
                 "    driver=vfio-pci,opt_pool=net1\n"
                 "    driver=vfio-pci,opt_host=81:10.0\n"
                 "    driver=vfio-pci,opt_pool=net2,opt_mac=02:00:00:00:00:07,opt_addr=9\n",
                 "vm0",
                 "[KVM]\n"
                 "vf_pool =\n"
                 "    name=net1,pf=ens1f0 ens1f1;\n"
                 "    name=net2,pf=ens2f0\n",
                 &vm);
    cr_assert_eq(r, 0, "%s", cfx_err);
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nwarnings, 0, "%s", cfx_warnings(vm));
    cr_assert_eq(vi->nvf_pools, 2);
    cr_assert_str_eq(vi->vf_pools[0].name, "net1");
    cr_assert_eq(vi->vf_pools[0].npf, 2);
    cr_assert_str_eq(vi->vf_pools[0].pf[0], "ens1f0");
    cr_assert_str_eq(vi->vf_pools[0].pf[1], "ens1f1");
    cr_assert_eq(cfg_vm_vf_pool(vm, "net2"), &vi->vf_pools[1]);
    cr_assert_null(cfg_vm_vf_pool(vm, "net3"));
    cr_assert_eq(vi->npt, 3);
    cr_assert_str_eq(vi->pt[0].id, "pt_0");
    cr_assert_str_eq(vi->pt[0].pool, "net1");
    cr_assert_null(vi->pt[0].host);
    cr_assert_eq(vi->pt[0].vf_need, 0);
    cr_assert_null(vi->pt[1].pool);
    cr_assert_str_eq(vi->pt[1].host, "0000:81:10.0");
    cr_assert_eq(vi->pt[1].vf_need, -1);
    cr_assert_str_eq(vi->pt[2].pool, "net2");
    cr_assert_eq(vi->pt[2].vf_need, 1);
    cr_assert_eq(vi->pt[2].slot, 9);
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.vfs, 2);
    cr_assert_str_eq(nd.vf_pool[0], "net1");
    cr_assert_str_eq(nd.vf_for[0], "device 0 pt_0");
    cr_assert_null(nd.vf_mac[0]);
    /* a VF takes a MAC lease like a NIC; the fixed host device does not */
    cr_assert_eq(nd.macs, 2);
    cr_assert_eq(nd.vf_mac_need[0], 1);
    cr_assert_str_eq(nd.mac_for[1], "device 0 pt_0");
    cr_assert_str_eq(nd.vf_pool[1], "net2");
    cr_assert_str_eq(nd.vf_for[1], "device 2 pt_2");
    cr_assert_str_eq(nd.vf_mac[1], "02:00:00:00:00:07");
    struct cfg_res res = { .run_dir = "/r" };
    strcpy(res.macs[1], "52:54:00:00:00:02");
    cr_assert_str_eq(cfg_vf_mac(&nd, &res, 0), "52:54:00:00:00:02");
    cr_assert_str_eq(cfg_vf_mac(&nd, &res, 1), "02:00:00:00:00:07");
    cr_assert_null(cfg_vf_mac(&nd, &res, 2));

    /* set appends a pool (a list key, like device); the section's vf_pool
     * replaces the defaults' whole, like every key */
    cr_assert_eq(cfg_vm_set(vm, "vf_pool", "name=net3,pf=ens3f0", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_eq(cfg_vm_info(vm)->nvf_pools, 3);
    cfg_vm_free(vm);
    r = cfx_load("[vm0]\nvf_pool = name=mine,pf=eth9\ndevice = driver=vfio-pci,opt_pool=net1\n", "vm0",
             "[KVM]\nvf_pool = name=net1,pf=ens1f0\n", &vm);
    cr_assert_eq(r, -EINVAL);
    cr_assert_str_eq(cfx_err, F ":3:35: error: device vfio-pci: opt_pool=net1 names no vf_pool; expected one of: mine");
}

Test(vf_pool, shared_pf_and_unknown_options_are_warned)
{
    /* (opt_mac with opt_host was warned and dropped here before issue 19;
     * it is the hand-picked VF's MAC now: vf_pool.host_vf_mac_and_vlans) */
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nvf_pool = name=a,pf=p0 p1;name=b,pf=p1,opt_x=1\n"
                                "device = driver=vfio-pci,opt_host=07:10.0,opt_maq=02:00:00:00:00:01\n");
    cr_assert_str_eq(cfx_warnings(vm),
        F ":2:37: warning: vf_pool: PF p1 is also in pool a; the two pools share its VFs\n"
        F ":2:40: warning: vf_pool: unknown option 'opt_x' ignored\n"
        F ":3:43: warning: device: unknown option 'opt_maq' ignored\n");
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.vfs, 0);
    cfg_vm_free(vm);
}

Test(vf_pool, host_vf_mac_and_vlans)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nvf_pool = name=a,pf=p0\n"
                                "device = driver=vfio-pci,opt_host=07:10.1,opt_mac=02:00:00:00:00:01,"
                                "opt_vlan=12;driver=vfio-pci,opt_pool=a,opt_vlan=4095;"
                                "driver=vfio-pci,opt_host=07:10.2\n");
    cr_assert_eq(cfg_vm_info(vm)->nwarnings, 0, "%s", cfx_warnings(vm));
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->npt, 3);
    cr_assert_str_eq(vi->pt[0].host, "0000:07:10.1");
    cr_assert_str_eq(vi->pt[0].mac, "02:00:00:00:00:01");
    cr_assert_eq(vi->pt[0].vlan, 12);
    cr_assert_null(vi->pt[2].mac);
    cr_assert_eq(vi->pt[2].vlan, 0);
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.vfs, 1);
    cr_assert_eq(nd.vf_vlan[0], 4095);
    cr_assert_eq(nd.macs, 2, "host_connect and the pool VF; the hand-picked VF has its own");
    cfg_vm_free(vm);
    cfx_load_err("[vm0]\ndevice = driver=vfio-pci,opt_host=07:10.1,opt_vlan=5\n",
             F ":2:43: error: device vfio-pci opt_vlan: with opt_host give opt_mac too (the VF's "
               "MAC and VLAN are set together through its PF)");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0\ndevice = driver=vfio-pci,opt_pool=a,opt_vlan=4096\n",
             F ":3:46: error: device opt_vlan: expected a whole number from 0 to 4095, got '4096'");
}

/* Issue 19 item 3: a pool names its VFs (vfs=) or leaves out those the
 * host uses (exclude=), as PCI addresses or PF:N. */

Test(vf_pool, vfs_and_exclude_lists)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nvf_pool = name=a,pf=p0 p1,exclude=p0:0 3b:02.1;"
                                "name=b,pf=p2,vfs=0000:3c:02.0 p2:7\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nvf_pools, 2);
    cr_assert_eq(vi->vf_pools[0].nexclude, 2);
    cr_assert_str_eq(vi->vf_pools[0].exclude[0], "p0:0");
    cr_assert_str_eq(vi->vf_pools[0].exclude[1], "0000:3b:02.1");
    cr_assert_eq(vi->vf_pools[0].nvfs, 0);
    cr_assert_eq(vi->vf_pools[1].nvfs, 2);
    cr_assert_str_eq(vi->vf_pools[1].vfs[0], "0000:3c:02.0");
    cr_assert_str_eq(vi->vf_pools[1].vfs[1], "p2:7");
    cfg_vm_free(vm);
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0,exclude=p1:0\n",
             F ":2:32: error: vf_pool exclude: expected VFs as PCI addresses (3b:02.1) or PF:N "
               "with PF one of the pool's, got 'p1:0'");
    cfx_load_err("[vm0]\nvf_pool = name=a,pf=p0,vfs=3b:02\n",
             F ":2:28: error: vf_pool vfs: expected VFs as PCI addresses (3b:02.1) or PF:N "
               "with PF one of the pool's, got '3b:02'");
}
