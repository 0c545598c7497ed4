/* test_cfg_dts.c - DTS constructs in the cfg model (issue 12): the messages
 * DTS users see, size suffixes, [KVM] defaults, multi-path QEMU, scene
 * devices from port pools, the control NIC, VM sections. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/util.h"
#include "cfg_fx.h"
#include "testutil.h"

/* --- DTS constructs (issue 12) ------------------------------------------- */

Test(dts, messages_say_what_is_wrong)
{
    cfx_load_err("[vm0]\nmem = size=2048; # comment\n",
             F ":2:18: error: expected OPTION=VALUE, got '# comment': inline comments are not allowed ('#' starts a comment only at the start of a line)");
    cfx_load_err("[vm0]\nmem = size=2048 # comment\n",
             F ":2:12: error: mem size: expected a memory size from 16 to 4194304 MiB: a number of MiB, or with a K, M, G or T suffix like 2G, got '2048 # comment' (inline comments are not allowed: '#' starts a comment only at the start of a line)");
    cfx_load_err("[vm0]\ncpu = number=2,cpupin=3,4\n",
             F ":2:25: error: expected OPTION=VALUE (this item has no '='): cpupin is space-separated, like cpupin=3 4");
    cfx_load_err("[vm0]\ndisk = file=\n", F ":2:13: error: disk file: is empty; expected a path");
    cfx_load_err("[vm0]\npflash = file=\n", F ":2:15: error: pflash file: is empty; expected a path");
    /* an automatic id that collides with a cfg's id: the cfg's is named */
    cfx_load_err("[vm0]\nnet = type=nic;type=user\ndevice = driver=e1000,opt_id=nic0\n",
             F ":3:30: error: id 'nic0' given here is also the id qfleet gives net NIC 0 automatically; choose another id");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_id=vhostuser0;driver=vhost-user,opt_path=/v\n",
             F ":2:30: error: id 'vhostuser0' given here is also the id qfleet gives device 1 (vhost-user) automatically; choose another id");
    cfx_load_err("[vm0]\ncrypto = enable=yes,opt_num=2\ndevice = driver=e1000,opt_id=crypto1\n",
             F ":3:30: error: id 'crypto1' is the id of crypto device 1 (crypto key); choose another id");
    cfx_load_err("[vm0]\ncrypto = enable=yes,opt_num=17\n",
             F ":2:29: error: crypto opt_num: expected a whole number from 1 to 16, got '17'");
    cfx_load_err("[vm0]\nmigration = enable=yes,listen=a b\n",
             F ":2:31: error: migration listen: expected an IPv4 address or host name to listen on (empty: all), got 'a b'");
    /* scene devices */
    cfx_load_err("[vm0]\ndevice = vf_idx=0,guestpci=auto\n",
             F ":2:10: error: device vf_idx: expected pf_dev=PORT too (DTS's DUT port number whose VF this is)");
    cfx_load_err("[vm0]\ndevice = vf_idx=0,pf_dev=0,pf_idx=1\n",
             F ":2:28: error: device: give vf_idx= (a VF of port pf_dev) or pf_idx= (the port itself), not both");
    cfx_load_err("[vm0]\ndevice = pf_idx=0,guestpci=1g\n",
             F ":2:28: error: device guestpci: expected auto or a guest PCI slot like 05 or 05.0, got '1g'");
    cfx_load_err("[vm0]\ndevice = vf_idx=0,pf_dev=0000:3b:00.0\n",
             F ":2:26: error: device pf_dev: expected a DTS port number (the vf_pool named portN) or a vf_pool name, got '0000:3b:00.0'");
    cfx_load_err("[vm0]\ncpu = numa=near\n", F ":2:12: error: cpu numa: expected auto or a NUMA node number, got 'near'");
    cfx_load_err("[vm0]\ncpu = cpupin=1,cpu_pin=2\n", F ":2:16: error: cpu: give cpupin= or cpu_pin=, not both");
}

Test(dts, memory_sizes_with_suffixes)
{
    static const struct {
        const char *v;
        int mb;
    } ok[] = { { "2048", 2048 }, { "2G", 2048 }, { "2g", 2048 }, { "512M", 512 },
               { "1T", 1 << 20 }, { "65536K", 64 }, { "4GiB", 4096 } };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[vm0]\nmem = size=%s\n", ok[i].v);
        struct cfg_vm *vm = cfx_load_ok(text);
        cr_assert_eq(cfg_vm_info(vm)->mem_mb, ok[i].mb, "size=%s", ok[i].v);
        cfg_vm_free(vm);
    }
    static const char *const bad[] = { "1000K", "2X", "G", "8", "5T", "-1G" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char text[128];
        struct cfg_vm *vm = NULL;
        snprintf(text, sizeof(text), "[vm0]\nmem = size=%s\n", bad[i]);
        cr_assert_eq(cfx_load(text, "vm0", NULL, &vm), -EINVAL, "size=%s loaded", bad[i]);
    }
}

Test(dts, kvm_defaults_fill_only_what_dts_fills)
{
    struct cfg_vm *vm;
    int r = cfx_load("[vm0]\nmem = size=512\n", "vm0",
                 "[KVM]\nname = name=other\nenable_kvm = enable=no\npid_file = name=/tmp/p\n"
                 "daemon = enable=yes\nmonitor = port=\nnet = type=nic,opt_model=virtio;type=user\n"
                 "cpu = number=3\nmem = size=2048\n",
                 &vm);
    cr_assert_eq(r, 0, "%s", cfx_err);
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->name, "vm0");
    cr_assert_eq(vi->kvm, 1);
    cr_assert_eq(vi->smp, 3);      /* a key the VM lacks */
    cr_assert_eq(vi->mem_mb, 512); /* the VM's own */
    cr_assert_eq(vi->host_connect, 0); /* the default NIC, not [KVM]'s net */
    cr_assert_str_eq(vi->nics[0].model, "e1000");
#define NEVER "ignored: DTS never takes name, enable_kvm, pid_file, daemon, monitor or net from the defaults\n"
    cr_assert_str_eq(cfx_warnings(vm),
        D ":2:1: warning: [KVM] key 'name' " NEVER
        D ":3:1: warning: [KVM] key 'enable_kvm' " NEVER
        D ":4:1: warning: [KVM] key 'pid_file' " NEVER
        D ":5:1: warning: [KVM] key 'daemon' " NEVER
        D ":6:1: warning: [KVM] key 'monitor' " NEVER
        D ":7:1: warning: [KVM] key 'net' " NEVER);
#undef NEVER
    cfg_vm_free(vm);
}

Test(dts, multi_path_qemu)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nqemu =\n    path=/q/5.2/qemu;\n    path=./7.2/qemu;\n"
                                "    path=qemu-system-x86_64;\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nqemu_paths, 3);
    cr_assert_str_eq(vi->qemu_paths[0], "/q/5.2/qemu");
    cr_assert_str_eq(vi->qemu_paths[1], "/cfgdir/7.2/qemu");
    cr_assert_str_eq(vi->qemu_paths[2], "qemu-system-x86_64");
    cr_assert_str_eq(vi->qemu, "qemu-system-x86_64"); /* the last, as DTS */
    cr_assert_eq(vi->qemu_selected, 2);
    cr_assert_eq(cfg_vm_select_qemu(vm, "1", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->qemu, "/cfgdir/7.2/qemu");
    cr_assert_eq(vi->qemu_selected, 1);
    /* kept across changes of the VM */
    cr_assert_eq(cfg_vm_set(vm, "mem", "size=256", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->qemu, "/cfgdir/7.2/qemu");
    cr_assert_eq(cfg_vm_select_qemu(vm, "3", cfx_err, sizeof(cfx_err)), -EINVAL);
    cr_assert_str_eq(cfx_err, "qemu path 3: expected an index from 0 to 2 (the qemu key has 3 paths) or a path");
    vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->qemu, "/cfgdir/7.2/qemu"); /* unchanged */
    cr_assert_eq(cfg_vm_select_qemu(vm, "/q/5.2/qemu", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    vi = cfg_vm_info(vm);
    cr_assert_eq(vi->qemu_selected, 0);
    cr_assert_eq(cfg_vm_select_qemu(vm, "/elsewhere/qemu", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->qemu, "/elsewhere/qemu");
    cr_assert_eq(vi->qemu_selected, -1);
    cr_assert_eq(cfg_vm_select_qemu(vm, NULL, cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_str_eq(cfg_vm_info(vm)->qemu, "qemu-system-x86_64");
    cfg_vm_free(vm);
    cfx_load_err("[vm0]\nqemu = path=/a,path=/b\n", F ":2:16: error: qemu: duplicate option 'path'; first at line 2 column 8");
}

Test(dts, scene_devices_draw_from_port_pools)
{
    struct cfg_vm *vm;
    int r = cfx_load("[vm0]\n"
                 "cpu = model=host,number=4,numa=auto,skipcores=0 1 2 3\n"
                 "device =\n"
                 "    vf_idx=1,pf_dev=0,guestpci=auto,mac=00:00:00:00:01:01;\n"
                 "    vf_idx=0,pf_dev=net2,guestpci=0x6;\n"
                 "    pf_idx=1,guestpci=auto;\n",
                 "vm0",
                 "[KVM]\nvf_pool = name=port0,pf=ens1f0;name=port1,pf=ens2f0;name=net2,pf=ens3f0\n",
                 &vm);
    cr_assert_eq(r, 0, "%s", cfx_err);
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_str_eq(cfx_warnings(vm),
        F ":2:1: warning: cpu: numa=/skipcores= recorded but not acted on: qfleet does not choose host CPUs by NUMA node, so the VM runs unpinned (give cpupin= to pin it)\n");
    cr_assert_eq(vi->numa, CFG_NUMA_AUTO);
    cr_assert_eq(vi->nskipcores, 4);
    cr_assert_eq(vi->skipcores[3], 3);
    cr_assert_eq(vi->npt, 3);
    cr_assert_str_eq(vi->pt[0].id, "pt_0");
    cr_assert_str_eq(vi->pt[0].pool, "port0");
    cr_assert_eq(vi->pt[0].vf_need, 0);
    cr_assert_null(vi->pt[0].pf_pool);
    cr_assert_str_eq(vi->pt[1].pool, "net2");
    cr_assert_eq(vi->pt[1].slot, 6);
    cr_assert_null(vi->pt[2].pool);
    cr_assert_str_eq(vi->pt[2].pf_pool, "port1");
    cr_assert_eq(vi->pt[2].pf_need, 0);
    cr_assert_eq(vi->pt[2].vf_need, -1);
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.vfs, 2);
    cr_assert_eq(nd.vf_index[0], 1);
    cr_assert_eq(nd.vf_index[1], 0);
    cr_assert_str_eq(nd.vf_mac[0], "00:00:00:00:01:01");
    cr_assert_null(nd.vf_mac[1]); /* from the allocator */
    cr_assert_eq(nd.pfs, 1);
    cr_assert_str_eq(nd.pf_pool[0], "port1");
    cr_assert_str_eq(nd.pf_for[0], "device 2 pt_2");
    cr_assert_eq(nd.macs, 2); /* host_connect and the second VF; never the PF */
    cfg_vm_free(vm);
    /* without the pools the cfg still loads (cmdline works anywhere) */
    vm = cfx_load_ok("[vm0]\ndevice = vf_idx=0,pf_dev=0,guestpci=auto\n");
    cr_assert_str_eq(cfx_warnings(vm),
        F ":2:26: warning: device vf_idx: the VM has no vf_pool named port0, so the fleet cannot lease a VF of it; expected vf_pool = name=port0,pf=PF (the PF netdev of DTS port 0) in [KVM]\n");
    cfg_vm_free(vm);
}

Test(dts, control_nic_is_the_first_user_backend)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nnet =\n    type=nic,opt_addr=3;type=tap,opt_script=no\n"
                                "    type=user,opt_hostfwd=::2222-:22;type=nic,opt_model=virtio\n"
                                "    type=nic,opt_addr=1f;type=user\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nnics, 3);
    cr_assert_eq(vi->control, 1);
    cr_assert_eq(vi->host_connect, 2);
    cr_assert_str_eq(vi->nics[2].id, "host_connect");
    const char *addr;
    int port;
    cr_assert_eq(cfg_vm_ssh(vm, NULL, &addr, &port), 0);
    cr_assert_str_eq(addr, "127.0.0.1");
    cr_assert_eq(port, 2222);
    cr_assert_str_eq(cfx_warnings(vm), "");
    cfg_vm_free(vm);
}

Test(dts, vm_sections)
{
    struct cfg_doc *d = cfx_parse_ok("[suite]\nframe_size = 1024\n[scene]\nsuite = dut=vm_dut\n"
                                 "[vm]\ncpu = number=4\n[vm1]\ndaemon = enable=yes\n"
                                 "[test_x]\nbuffer-sz=\"64,128\"\n");
    cr_assert_eq(cfg_section_is_vm(cfg_doc_section(d, "suite")), 0);
    cr_assert_eq(cfg_section_is_vm(cfg_doc_section(d, "scene")), 0);
    cr_assert_eq(cfg_section_is_vm(cfg_doc_section(d, "vm")), 1);
    cr_assert_eq(cfg_section_is_vm(cfg_doc_section(d, "vm1")), 1);
    cr_assert_eq(cfg_section_is_vm(cfg_doc_section(d, "test_x")), 0);
    cfg_doc_free(d);
    /* loading one as a VM says what it looks like */
    struct cfg_vm *vm;
    cr_assert_eq(cfx_load("[suite]\nframe_size = 1024\n", "suite", NULL, &vm), 0, "%s", cfx_err);
    cr_assert_str_eq(cfx_warnings(vm),
        F ":1:2: warning: section [suite] has no key of the VM grammar (cpu, mem, disk, net, device, ...): it looks like a suite's, scene's or test case's section, not a VM\n"
        F ":2:1: warning: unknown key 'frame_size' ignored\n");
    cfg_vm_free(vm);
}

/* Issue 19 item 1: mac_prefix was "unknown key ... ignored". Now it is the
 * VM's prefix (canonical, 1-5 octets, unicast), from the VM's section or
 * from [KVM], in the bare or the DTS pair form; cfg_vm_set overrides it. */
