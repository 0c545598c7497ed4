/* test_cfg.c - the DTS cfg grammar, the VM model, its warnings and errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/parse.h"
#include "cfg/util.h"
#include "cfg/vm.h"
#include "cfg_fx.h"
#include "testutil.h"

/* --- grammar ----------------------------------------------------------- */

Test(grammar, dts_doc_sample_two_device_lines_are_two_groups)
{
    struct cfg_doc *d = cfx_parse_ok(
        "# vm configuration for vhost sample case\n"
        "[vm0]\n"
        "cpu =\n"
        "   model=host,number=2,cpupin=24 25;\n"
        "device =\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21\n");
    cr_assert_eq(cfg_doc_nsections(d), 1);
    const struct cfg_section *s = cfg_doc_section(d, "vm0");
    cr_assert_not_null(s);
    cr_assert_eq(s->nkeys, 2);
    cr_assert_str_eq(s->keys[0].name, "cpu");
    cr_assert_eq(s->keys[0].ngroups, 1);
    cr_assert_str_eq(s->keys[0].groups[0].text, "model=host,number=2,cpupin=24 25");
    const struct cfg_key *k = &s->keys[1];
    cr_assert_eq(k->ngroups, 2);
    cr_assert_str_eq(k->groups[1].text,
                     "driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21");
    struct arena a = { 0 };
    struct cfg_pair p[8];
    int n;
    cr_assert_eq(cfg_group_pairs(&a, &k->groups[1], F, p, 8, &n, cfx_err, sizeof(cfx_err)), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(p[2].opt, "opt_mac");
    cr_assert_str_eq(p[2].val, "00:00:20:00:00:21");
    cr_assert_eq(p[2].opt_loc.line, 7);
    cr_assert_eq(p[2].opt_loc.col, 48);
    cr_assert_eq(p[2].val_loc.col, 56);
    ar_free(&a);
    cfg_doc_free(d);
}

Test(grammar, groups_semicolons_commas_and_first_equals)
{
    struct cfg_doc *d = cfx_parse_ok(
        "[a]\n"
        "k1 = x=1; y=2;; ;\n"
        "k2 =\n"
        "    a = 1 ,\n"
        "    # a comment inside the group\n"
        "\n"
        "    b=2\n"
        "    c=3\n"
        "KERNEL = append=console=ttyS0 quiet , file = /boot/vmlinuz\n");
    const struct cfg_section *s = cfg_doc_section(d, "a");
    cr_assert_eq(s->nkeys, 3);
    cr_assert_eq(s->keys[0].ngroups, 2);
    cr_assert_str_eq(s->keys[0].groups[0].text, "x=1");
    cr_assert_str_eq(s->keys[0].groups[1].text, "y=2");
    const struct cfg_key *k2 = &s->keys[1];
    cr_assert_eq(k2->ngroups, 2);
    cr_assert_str_eq(k2->groups[0].text, "a = 1 ,b=2");
    cr_assert_str_eq(k2->groups[1].text, "c=3");
    /* a joined group maps offsets back to both lines */
    struct cfg_loc l = cfg_group_loc(&k2->groups[0], F, 7);
    cr_assert_eq(l.line, 7);
    cr_assert_eq(l.col, 5);
    struct arena a = { 0 };
    struct cfg_pair p[8];
    int n;
    cr_assert_eq(cfg_group_pairs(&a, &k2->groups[0], F, p, 8, &n, cfx_err, sizeof(cfx_err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(p[0].opt, "a");
    cr_assert_str_eq(p[0].val, "1");
    cr_assert_eq(p[1].opt_loc.line, 7);
    cr_assert_str_eq(s->keys[2].name, "kernel");
    cr_assert_eq(cfg_group_pairs(&a, &s->keys[2].groups[0], F, p, 8, &n, cfx_err, sizeof(cfx_err)), 0);
    cr_assert_str_eq(p[0].opt, "append");
    cr_assert_str_eq(p[0].val, "console=ttyS0 quiet");
    cr_assert_str_eq(p[1].val, "/boot/vmlinuz");
    ar_free(&a);
    cfg_doc_free(d);
}

Test(grammar, configparser_layout_rules)
{
    struct cfg_doc *d = cfx_parse_ok(
        "\xef\xbb\xbf; semicolon comment\r\n"
        "[ vm0 ]  # comment after the header\r\n"
        "\tnet =\r\n"
        "\t   type=nic\r\n"
        "\tcpu = number=1\r\n"
        "mem: size=1024\r\n"
        "[vm1]\n"
        "disk =\n");
    cr_assert_eq(cfg_doc_nsections(d), 2);
    const struct cfg_section *s = cfg_doc_section(d, "vm0");
    cr_assert_not_null(s);
    cr_assert_eq(s->loc.line, 2);
    cr_assert_eq(s->loc.col, 3);
    cr_assert_eq(s->nkeys, 3);
    cr_assert_str_eq(s->keys[0].name, "net");                /* indented key after a header */
    cr_assert_str_eq(s->keys[0].groups[0].text, "type=nic"); /* deeper indent continues */
    cr_assert_str_eq(s->keys[1].name, "cpu");                /* same indent: a new key */
    cr_assert_str_eq(s->keys[2].groups[0].text, "size=1024");
    cr_assert_eq(cfg_doc_section(d, "vm1")->keys[0].ngroups, 0);
    cfg_doc_free(d);
}

Test(grammar, syntax_errors_name_line_and_column)
{
    cfx_parse_err("cpu = number=1\n", F ":1:1: error: expected a [section] header before the first key");
    cfx_parse_err("[vm0]\ncpu\n", F ":2:1: error: expected 'key = value' or '[section]'");
    cfx_parse_err("[vm0]\n = 1\n", F ":2:2: error: expected a key name before '='");
    cfx_parse_err("[vm0\n", F ":1:1: error: expected ']' to close the section header");
    cfx_parse_err("[ ]\n", F ":1:1: error: expected a section name between '[' and ']'");
    cfx_parse_err("[vm0] x\n", F ":1:7: error: expected the end of the line after ']'");
    cfx_parse_err("[vm0]\ncpu = number=1\n[vm1]\n[vm0]\n",
              F ":4:2: error: duplicate section [vm0]; first at " F ":1");
    cfx_parse_err("[vm0]\ncpu = number=1\nmem = size=1\nCpu = model=host\n",
              F ":4:1: error: duplicate key 'cpu' in [vm0]; first at " F ":2");
}

Test(grammar, parse_errors_via_nul_need_explicit_length)
{
    /* strlen stops at the NUL above, so check the NUL rule with a length */
    struct cfg_doc *d;
    static const char t[] = "[vm0]\ncpu = a\0b\n";
    cr_assert_eq(cfg_doc_parse(F, t, sizeof(t) - 1, &d, cfx_err, sizeof(cfx_err)), -EINVAL);
    cr_assert_str_eq(cfx_err, F ":2:8: error: NUL byte in the file");
}

Test(grammar, pair_errors)
{
    cfx_load_err("[vm0]\ncpu = model=host,number\n", F ":2:18: error: expected OPTION=VALUE (this item has no '=')");
    cfx_load_err("[vm0]\ncpu = model=host, =2\n", F ":2:19: error: expected an option name before '='");
    cfx_load_err("[vm0]\ncpu = mo del=host\n", F ":2:7: error: expected an option name of letters, digits, '_', '-' or '.'");
    cfx_load_err("[vm0]\ncpu = number=1,\n    NUMBER=2\n",
             F ":3:5: error: cpu: duplicate option 'NUMBER'; first at line 2 column 7");
    cfx_load_err("[vm0]\nmem = size=1024\n    size=2048\n",
             F ":3:5: error: mem: duplicate option 'size'; first at line 2 column 7");
}

Test(grammar, relative_dir_is_made_absolute)
{
    struct cfg_doc *d;
    cr_assert_eq(cfg_doc_parse("sub/x.cfg", "[a]\n", 4, &d, cfx_err, sizeof(cfx_err)), 0);
    cr_assert_eq(cfg_doc_dir(d)[0], '/');
    cr_assert(strstr(cfg_doc_dir(d), "/sub") != NULL);
    cfg_doc_free(d);
    cr_assert_eq(cfg_doc_parse("/abs/dir/x.cfg", "", 0, &d, cfx_err, sizeof(cfx_err)), 0);
    cr_assert_str_eq(cfg_doc_dir(d), "/abs/dir");
    cfg_doc_free(d);
}

/* --- value errors ------------------------------------------------------- */

Test(errors, each_kind_of_bad_value)
{
    cfx_load_err("[vm0]\ncpu = model=host,number=two\n",
             F ":2:25: error: cpu number: expected a whole number from 1 to 255, got 'two'");
    cfx_load_err("[vm0]\ncpu = cpupin=24 2x5\n",
             F ":2:17: error: cpu cpupin: expected host CPU numbers separated by spaces, got '2x5'");
    cfx_load_err("[vm0]\ncpu = cpupin=3 3\n", F ":2:16: error: cpu cpupin: CPU 3 is listed twice");
    cfx_load_err("[vm0]\ncpu = model=ho st\n",
             F ":2:13: error: cpu model: expected a name of letters, digits and '_.+-', got 'ho st'");
    cfx_load_err("[vm0]\nmem = size=8\n",
             F ":2:12: error: mem size: expected a memory size from 16 to 4194304 MiB: a number of MiB, or with a K, M, G or T suffix like 2G, got '8'");
    cfx_load_err("[vm0]\nmem = hugepage=maybe\n",
             F ":2:16: error: mem hugepage: expected yes or no, got 'maybe'");
    cfx_load_err("[vm0]\nnet = type=nic,opt_macaddr=00:11:22:33:44\n",
             F ":2:28: error: net opt_macaddr: expected a MAC address like 52:54:00:12:34:56, got '00:11:22:33:44'");
    cfx_load_err("[vm0]\nnet = type=nic,opt_macaddr=01:00:5e:00:00:01\n",
             F ":2:28: error: net opt_macaddr: expected a unicast MAC address (first octet even, not all zero), got '01:00:5e:00:00:01'");
    cfx_load_err("[vm0]\nnet = type=nic,opt_model=e2000\n",
             F ":2:26: error: net opt_model: expected a NIC model: e1000, e1000e, virtio (virtio-net-pci), rtl8139, vmxnet3, i82559er, ..., got 'e2000'");
    cfx_load_err("[vm0]\nnet = type=vde\n", F ":2:12: error: net type: expected nic, user, tap or bridge, got 'vde'");
    cfx_load_err("[vm0]\nnet = opt_vlan=0\n", F ":2:7: error: net: expected type=nic, user, tap or bridge in each group");
    cfx_load_err("[vm0]\nnet = type=nic,opt_addr=20\n",
             F ":2:25: error: net opt_addr: expected a guest PCI slot like 1f or 1f.0 (hex slot 00-1f, function 0-7), got '20'");
    cfx_load_err("[vm0]\nnet = type=user,opt_hostfwd=tcp::22\n",
             F ":2:29: error: net opt_hostfwd: expected [tcp|udp]:[HOSTADDR]:[HOSTPORT]-[GUESTADDR]:[GUESTPORT], got 'tcp::22'");
    cfx_load_err("[vm0]\ndevice = driver=ivshmem\n",
             F ":2:17: error: device driver: expected pci-assign, vfio-pci, virtio-net-pci, vhost-user or a NIC model (e1000, e1000e, virtio (virtio-net-pci), rtl8139, vmxnet3, i82559er, ...), got 'ivshmem'");
    cfx_load_err("[vm0]\ndevice = driver=vhost-cuse,opt_mac=00:00:20:00:00:20\n",
             F ":2:17: error: device driver: vhost-cuse (CUSE vhost over tap) is gone from current QEMU and DPDK; expected vhost-user");
    cfx_load_err("[vm0]\ndevice = opt_host=07:10.0\n", F ":2:10: error: device: expected driver=... in each group (or DTS's scene form vf_idx=N,pf_dev=PORT or pf_idx=PORT)");
    cfx_load_err("[vm0]\ndevice = driver=pci-assign\n",
             F ":2:10: error: device pci-assign: expected opt_host=BB:DD.F (the host PCI device) or opt_pool=POOL (a VF of a vf_pool)");
    cfx_load_err("[vm0]\ndevice = driver=vfio-pci,opt_host=07:10\n",
             F ":2:35: error: device opt_host: expected a host PCI address like 07:10.0 or 0000:07:10.0, got '07:10'");
    cfx_load_err("[vm0]\ndevice = driver=vhost-user,opt_mac=00:00:20:00:00:20\n",
             F ":2:10: error: device vhost-user: expected opt_path=SOCKET (non-empty)");
    cfx_load_err("[vm0]\ndevice = driver=vhost-user,opt_path=x,opt_queues=0\n",
             F ":2:50: error: device opt_queues: expected a whole number from 1 to 256, got '0'");
    cfx_load_err("[vm0]\ndisk = opt_format=raw\n", F ":2:8: error: disk: expected file=PATH in each group");
    cfx_load_err("[vm0]\ndisk = file=a.img,opt_if=nvme\n",
             F ":2:26: error: disk opt_if: expected ide, scsi, virtio, sd, mtd, floppy, pflash or none, got 'nvme'");
    cfx_load_err("[vm0]\nkernel = initrd=/boot/initrd\n", F ":2:1: error: kernel: expected file=PATH");
    cfx_load_err("[vm0]\nkernel = file=/k,kernel_img=/k\n", F ":2:18: error: kernel: give file= or kernel_img=, not both");
    cfx_load_err("[vm0]\nvnc = displayNum=-1\n",
             F ":2:18: error: vnc displayNum: expected a whole number from 0 to 59635, got '-1'");
    cfx_load_err("[vm0]\nmigration = enable=yes,port=70000\n",
             F ":2:29: error: migration port: expected a whole number from 1 to 65535, got '70000'");
    cfx_load_err("[vm0]\nusercmd = -device e1000\n", F ":2:11: error: usercmd: expected cmd=ARGUMENTS");
    cfx_load_err("[vm0]\nusercmd =\n    cmd=-append 'console=ttyS0\n",
             F ":3:17: error: usercmd: unterminated single quote; expected shell-style words");
    cfx_load_err("[vm0]\nname = name=vm/0\n",
             F ":2:13: error: name name: expected a VM name of letters, digits, '_', '.' and '-' (at most 64), got 'vm/0'");
    cfx_load_err("[vm0]\nmachine = type=pc,machine=q35\n", F ":2:19: error: machine: give type= or machine=, not both");
    cfx_load_err("[vm0]\nenable_kvm = enable=perhaps\n",
             F ":2:21: error: enable_kvm enable: expected yes or no, got 'perhaps'");
}

Test(errors, login_errors_never_echo_values)
{
    cfx_load_err("[vm0]\nlogin = user=root,passwordS3cret\n",
             F ":2:19: error: expected OPTION=VALUE (this item has no '=')");
    cr_assert_null(strstr(cfx_err, "S3cret"));
}

Test(errors, model_conflicts)
{
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_addr=1f\n",
             F ":2:32: error: PCI address 1f.0 is taken by the default host_connect NIC (the VM has no net key)");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_addr=1\n",
             F ":2:32: error: PCI address 01.0 is taken by the pc machine's PIIX3 (ISA, IDE, USB, ACPI)");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_addr=02.3\n",
             F ":2:32: error: PCI address 02.3 is taken by the VGA of the VNC display");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_addr=5;\n    driver=rtl8139,opt_addr=0x05.0\n",
             F ":3:29: error: PCI address 05.0 is taken by device dev0 at " F ":2:32");
    cfx_load_err("[vm0]\nmachine = type=q35\n",
             F ":2:16: error: machine q35 keeps slot 1f for itself, where the default host_connect NIC must sit; expected machine type=pc, or a net key");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_id=pt_0;driver=e1000,opt_id=pt_0\n",
             F ":2:55: error: id 'pt_0' is used twice; first at " F ":2:30");
    cfx_load_err("[vm0]\ndevice = driver=e1000,opt_id=vga0\n",
             F ":2:30: error: id 'vga0' is reserved for qfleet's own devices");
    cfx_load_err("[vm0]\nnet = type=nic;type=user\ndevice = driver=virtio-net-pci,opt_netdev=net0\n",
             F ":3:43: error: device virtio-net-pci: opt_netdev=net0 is the backend of net NIC 0; expected a netdev of its own (defined with usercmd)");
    struct cfg_vm *vm;
    cr_assert_eq(cfx_load("[vm 0]\n", "vm 0", NULL, &vm), -EINVAL);
    cr_assert_str_eq(cfx_err, F ":1:2: error: VM name 'vm 0': expected letters, digits, '_', '.' and '-' "
                            "(at most 64; it names sockets and logs), or a name key");
    cr_assert_eq(cfx_load("[vm 0]\nname = name=vm0\n", "vm 0", NULL, &vm), 0);
    cr_assert_str_eq(cfg_vm_info(vm)->name, "vm0");
    cfg_vm_free(vm);
    cr_assert_eq(cfx_load("[vm0]\n", "vm1", NULL, &vm), -ENOENT);
    cr_assert_str_eq(cfx_err, F ": no section [vm1] (sections: vm0)");
}

Test(errors, too_many_devices_for_the_bus)
{
    char text[4096] = "[vm0]\ndevice =\n";
    for (int i = 0; i < 28; i++)
        strcat(text, "    driver=e1000\n");
    cfx_load_err(text, F ":3:5: error: not enough guest PCI slots: 28 devices need one (and 1 more are placed by QEMU), 28 are free");
}

/* --- warnings ------------------------------------------------------------ */

Test(warnings, every_unknown_or_ignored_setting_is_named)
{
    struct cfg_vm *vm = cfx_load_ok(
        "[vm0]\n"
        "virt_type = virt_type=KVM\n"
        "os = type=linux\n"
        "vif = mac=random,bridge=br0\n"
        "def_driver = driver_name=igb_uio\n"
        "control = type=telnet\n"
        "dev_gen = pf_idx=0,vf_num=1,driver=igb_uio\n"
        "pid_file = name=/tmp/.vm0.pid\n"
        "fancy_key = x=1\n"
        "monitor =\n"
        "    path=/tmp/vm0_monitor.sock,port=\n"
        "daemon = enable=yes\n"
        "cpu = model=host,speed=fast\n"
        "net = type=nic,opt_addr=1f,opt_vlan=1;type=user\n"
        "serial_port = enable=no\n"
        "start = wait_seconds=30,login_prompt=login:\n"
        "device = driver=pci-assign,opt_host=07:10.0\n");
    cr_assert_str_eq(cfx_warnings(vm),
        F ":2:1: warning: key 'virt_type' ignored: it selects the hypervisor in DTS; qfleet runs QEMU/KVM\n"
        F ":3:1: warning: key 'os' ignored: it belongs to another hypervisor's settings in DTS\n"
        F ":4:1: warning: key 'vif' ignored: it belongs to DTS's Xen settings\n"
        F ":5:1: warning: key 'def_driver' ignored: it is DTS's guest port driver for KVM (driver_name, e.g. vfio-pci; driver_mode=noiommu), which DTS binds the guest's ports to; qfleet does not bind drivers inside guests (a suite step can)\n"
        F ":6:1: warning: key 'control' ignored: qfleet controls guests through QMP, the guest agent and SSH\n"
        F ":7:1: warning: key 'dev_gen' ignored: DTS's scenes create VFs here; qfleet does not create VFs: create them (sriov_numvfs) and bind them to vfio-pci before launch\n"
        F ":8:1: warning: key 'pid_file' ignored: qfleet runs QEMU as its child and needs no pid file\n"
        F ":9:1: warning: unknown key 'fancy_key' ignored\n"
        F ":11:5: warning: monitor: path ignored: qfleet owns the QMP sockets (RUNDIR/NAME-qmp.sock, NAME-qmp-inspect.sock)\n"
        F ":11:32: warning: monitor: port ignored: qfleet's monitors are Unix sockets\n"
        F ":12:1: warning: daemon: ignored: qfleet supervises QEMU as its child process (no -daemonize)\n"
        F ":13:18: warning: cpu: unknown option 'speed' ignored\n"
        F ":14:37: warning: net: opt_vlan=1 ignored: each nic is paired with the backend group next to it\n"
        F ":15:1: warning: serial_port: enable=no ignored: the serial console always goes to RUNDIR/NAME-serial.log\n"
        F ":16:25: warning: start: login_prompt ignored: qfleet logs in over SSH\n"
        F ":17:17: warning: device: pci-assign (legacy KVM assignment) is gone from QEMU; using vfio-pci\n");
    cfg_vm_free(vm);
}

Test(warnings, net_pairing_and_host_connect)
{
    /* DTS pairs net groups by position: the user group and the nic group
     * after it are one NIC; the last nic has no backend */
    struct cfg_vm *vm = cfx_load_ok(
        "[vm0]\n"
        "net =\n"
        "    type=user\n"
        "    type=nic,opt_model=virtio,opt_vectors=3\n"
        "    type=nic,opt_vectors=2\n");
    cr_assert_str_eq(cfx_warnings(vm),
        F ":5:14: warning: net: opt_vectors ignored: e1000 has no MSI-X vectors\n"
        F ":5:5: warning: net: type=nic has no backend group next to it; using user networking\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nnics, 2);
    cr_assert_eq(vi->host_connect, -1);
    cr_assert_eq(vi->control, 0); /* the NIC of the first user backend */
    cr_assert_str_eq(vi->nics[0].model, "virtio-net-pci");
    cr_assert_str_eq(vi->nics[0].backend, "user");
    cfg_vm_free(vm);
    /* two backends in a row: the first one gets an e1000 of its own; a
     * VM without a user backend cannot be reached over SSH */
    vm = cfx_load_ok(
        "[vm0]\n"
        "net =\n"
        "    type=tap,opt_script=no\n"
        "    type=bridge\n"
        "    type=nic,opt_model=virtio\n");
    cr_assert_str_eq(cfx_warnings(vm),
        F ":3:5: warning: net: type=tap has no type=nic group next to it; adding an e1000 NIC\n"
        F ":2:1: warning: net: no NIC has a user network backend with a host forward: qfleet cannot reach the guest over SSH (DTS reaches guests through the first user network's hostfwd)\n");
    vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nnics, 2);
    cr_assert_eq(vi->control, -1);
    cr_assert_str_eq(vi->nics[0].model, "e1000");
    cr_assert_str_eq(vi->nics[1].model, "virtio-net-pci");
    cr_assert_str_eq(vi->nics[1].backend, "bridge");
    cfg_vm_free(vm);
}

/* --- model ---------------------------------------------------------------- */

Test(model, exported_fields)
{
    struct cfg_vm *vm = cfx_load_ok(
        "[vm0]\n"
        "cpu = model=host,number=2,cpupin=24 25\n"
        "mem = size=4096\n"
        "login = user=root,password=tester\n"
        "qga = enable=no\n"
        "start = wait_seconds=240,login_timeout=30\n"
        "net = type=nic,opt_addr=3;type=tap;type=nic,opt_addr=1f,opt_name=ctl;type=user\n"
        "device =\n"
        "    driver=vfio-pci,opt_host=81:10.0\n"
        "    driver=e1000,opt_id=pt_0\n"
        "    driver=pci-assign,opt_host=0000:81:10.2,opt_addr=6\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->name, "vm0");
    cr_assert_str_eq(vi->user, "root");
    cr_assert_str_eq(vi->password, "tester");
    cr_assert_eq(vi->qga, 0);
    cr_assert_eq(vi->wait_seconds, 240);
    cr_assert_eq(vi->login_timeout, 30);
    cr_assert_eq(vi->ncpupin, 2);
    cr_assert_eq(vi->cpupin[0], 24);
    cr_assert_eq(vi->cpupin[1], 25);
    cr_assert_eq(vi->smp, 2);
    cr_assert_eq(vi->mem_mb, 4096);
    cr_assert_eq(vi->host_connect, 1);
    cr_assert_str_eq(vi->nics[1].id, "ctl");
    cr_assert_str_eq(vi->nics[0].backend, "tap");
    cr_assert_eq(vi->npt, 3);
    cr_assert_str_eq(vi->pt[0].id, "pt_1"); /* pt_0 is taken by the cfg */
    cr_assert_str_eq(vi->pt[0].host, "0000:81:10.0");
    cr_assert_eq(vi->pt[0].slot, -1);
    cr_assert_eq(vi->pt[0].slot_need, 0);
    cr_assert_str_eq(vi->pt[1].id, "pt_0");
    cr_assert_str_eq(vi->pt[1].driver, "e1000");
    cr_assert_null(vi->pt[1].host);
    cr_assert_str_eq(vi->pt[2].id, "pt_2");
    cr_assert_eq(vi->pt[2].slot, 6);
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.macs, 3); /* two NICs, the e1000 device */
    cr_assert_eq(nd.slots, 2);
    cr_assert_str_eq(nd.slot_for[0], "device 0 pt_1");
    cr_assert_eq(nd.ports, 1);
    cr_assert_eq(nd.vnc, 1);
    cr_assert_eq(nd.slots_taken, (1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 0x1f));
    cr_assert_eq(nd.ncpupin, 2);
    cfg_vm_free(vm);
}

Test(model, defaults_merge_under_the_suite_file)
{
    struct cfg_vm *vm;
    int r = cfx_load("[vm0]\ncpu = number=2\nmem = size=512\n", "vm0",
                 "[LIBVIRT]\ncpu = number=8\n"
                 "[KVM]\ncpu = model=host,number=4,cpupin=3 4 5 6\nmem = size=2048,hugepage=yes\n"
                 "start = wait_seconds=180\nvirt_type = virt_type=KVM\n",
                 &vm);
    cr_assert_eq(r, 0, "%s", cfx_err);
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->smp, 2);
    cr_assert_eq(vi->ncpupin, 0); /* the suite's cpu replaced the defaults' whole */
    cr_assert_eq(vi->mem_mb, 512);
    cr_assert_eq(vi->hugepage, 0);
    cr_assert_eq(vi->wait_seconds, 180);
    cr_assert_str_eq(cfx_warnings(vm),
        D ":1:2: warning: section [LIBVIRT] ignored: qfleet takes its defaults from [KVM]\n"
        D ":7:1: warning: key 'virt_type' ignored: it selects the hypervisor in DTS; qfleet runs QEMU/KVM\n");
    cfg_vm_free(vm);
    cr_assert_eq(cfx_load("[vm0]\n", "vm0", "[XEN]\nmem = size=1\n", &vm), -ENOENT);
    cr_assert_str_eq(cfx_err, D ": no [KVM] section of defaults");
    cr_assert_eq(cfx_load("[vm0]\n", "vm0", "[KVM]\nmem = size=1\n", &vm), -EINVAL);
    cr_assert_str_eq(cfx_err, D ":2:12: error: mem size: expected a memory size from 16 to 4194304 MiB: a number of MiB, or with a K, M, G or T suffix like 2G, got '1'");
}

Test(model, set_like_dts_set_vm_device)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nvnc = displayNum=1\ndevice = driver=e1000\n");
    cr_assert_eq(cfg_vm_set(vm, "device",
                            "driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20",
                            cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_eq(cfg_vm_set(vm, "DEVICE",
                            "driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21",
                            cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_eq(cfg_vm_set(vm, "vnc", "disable=yes", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_eq(cfg_vm_set(vm, "enable_kvm", "enable=no", cfx_err, sizeof(cfx_err)), 0);
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->vnc, -1);
    cr_assert_eq(vi->kvm, 0);
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.slots, 3);
    cr_assert_str_eq(nd.slot_for[2], "device 2 vhostuser1");

    /* a bad value names the set and leaves the VM as it was */
    cr_assert_eq(cfg_vm_set(vm, "device", "driver=vhost-user,opt_mac=00:00:20:00:00:22",
                            cfx_err, sizeof(cfx_err)), -EINVAL);
    cr_assert_str_eq(cfx_err, "<set device>:1:1: error: device vhost-user: expected opt_path=SOCKET (non-empty)");
    cr_assert_eq(cfg_vm_set(vm, "cpu", "number=1,\n  cpupin=a", cfx_err, sizeof(cfx_err)), -EINVAL);
    cr_assert_str_eq(cfx_err, "<set cpu>:2:10: error: cpu cpupin: expected host CPU numbers separated by spaces, got 'a'");
    vi = cfg_vm_info(vm);
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.slots, 3);
    cr_assert_eq(vi->smp, 0);

    cr_assert_eq(cfg_vm_clear(vm, "device", cfx_err, sizeof(cfx_err)), 0);
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.slots, 0);
    cr_assert_eq(cfg_vm_clear(vm, "device", cfx_err, sizeof(cfx_err)), -ENOENT);
    cr_assert_eq(cfg_vm_set(vm, "bad key", "x=1", cfx_err, sizeof(cfx_err)), -EINVAL);
    cr_assert_eq(cfg_vm_set(vm, "os", "x=1", cfx_err, sizeof(cfx_err)), 0);
    cr_assert_str_eq(cfx_warnings(vm), "<set os>:1:1: warning: key 'os' ignored: it belongs to another hypervisor's settings in DTS\n");
    cfg_vm_free(vm);
}

Test(model, relative_paths_resolve_against_the_cfg_dir)
{
    struct cfg_vm *vm;
    cr_assert_eq(cfx_load("[vm0]\ndisk = file=./img/a.img\nqemu = path=bin/qemu\n", "vm0",
                      "[KVM]\nkernel = file=../boot/vmlinuz\n", &vm), 0, "%s", cfx_err);
    struct cfg_res res = { .run_dir = "/r", .macs = { "52:54:00:00:00:01" }, .ssh_port = { 2222 } };
    res.vnc = 1;
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_str_eq(argv[0], "/cfgdir/bin/qemu");
    int kern = 0, disk = 0;
    for (char **a = argv; *a; a++) {
        kern |= !strcmp(*a, "/cfgdir/../boot/vmlinuz");
        disk |= !strcmp(*a, "file=/cfgdir/img/a.img");
    }
    cr_assert(kern && disk);
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}

/* --- the examples ------------------------------------------------------- */

static int count_warnings(const char *file, const char *vm, const char *defaults)
{
    char path[1024], dpath[1024];
    struct cfg_vm *v;
    snprintf(path, sizeof(path), "%s/cfg/examples/%s", QF_SOURCE_DIR, file);
    snprintf(dpath, sizeof(dpath), "%s/cfg/examples/%s", QF_SOURCE_DIR, defaults ? defaults : "");
    int r = cfg_vm_load(path, vm, defaults ? dpath : NULL, &v, cfx_err, sizeof(cfx_err));
    cr_assert_eq(r, 0, "%s [%s]: %s", file, vm, cfx_err);
    int n = cfg_vm_info(v)->nwarnings;
    cfg_vm_free(v);
    return n;
}

Test(examples, all_load)
{
    cr_assert_eq(count_warnings("dts-sample.cfg", "vm0", NULL), 0);
    cr_assert_eq(count_warnings("dts-sample.cfg", "vm0", "virt_global.cfg"), 2);
    cr_assert_eq(count_warnings("wild/multi_vm.cfg", "vm0", NULL), 2);
    cr_assert_eq(count_warnings("wild/multi_vm.cfg", "vm1", NULL), 2);
    cr_assert_eq(count_warnings("wild/other_hypervisors.cfg", "vm0", NULL), 5); /* pflash is used */
    cr_assert_eq(count_warnings("wild/comments.cfg", "vm0", NULL), 0);
    cr_assert_eq(count_warnings("wild/passthrough.cfg", "vf_vm", NULL), 1);
    cr_assert_eq(count_warnings("wild/passthrough.cfg", "emul_vm", NULL), 0);
    cr_assert_eq(count_warnings("wild/usercmd.cfg", "mig_dst", NULL), 0);
}

Test(errors, more_nics_and_devices_than_slots)
{
    char text[8192] = "[vm0]\nnet =\n";
    for (int i = 0; i < 16; i++)
        strcat(text, "    type=nic;type=user\n");
    strcat(text, "device =\n");
    for (int i = 0; i < 28; i++)
        strcat(text, "    driver=e1000\n");
    cfx_load_err(text, F ":3:5: error: not enough guest PCI slots: 44 devices need one (and 1 more are "
                   "placed by QEMU), 29 are free");
}

Test(mac_prefix, from_vm_or_kvm_section_and_set)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nmac_prefix = 02:AB:cd\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->mac_prefix, "02:ab:cd:");
    cr_assert_eq(vi->nwarnings, 0, "%s", cfx_warnings(vm));
    cr_assert_eq(cfg_vm_set(vm, "mac_prefix", "prefix=52:54:00:11:22:", cfx_err, sizeof(cfx_err)), 0,
                 "%s", cfx_err);
    cr_assert_str_eq(cfg_vm_info(vm)->mac_prefix, "52:54:00:11:22:");
    cr_assert_eq(cfg_vm_set(vm, "mac_prefix", "", cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    cr_assert_null(cfg_vm_info(vm)->mac_prefix);
    cr_assert_lt(cfg_vm_set(vm, "mac_prefix", "03:00:", cfx_err, sizeof(cfx_err)), 0);
    cr_assert(strstr(cfx_err, "multicast"), "%s", cfx_err);
    cfg_vm_free(vm);

    cr_assert_eq(cfx_load("[vm0]\nmem = size=512\n", "vm0", "[KVM]\nmac_prefix = prefix=0a:0b\n", &vm),
                 0, "%s", cfx_err);
    cr_assert_str_eq(cfg_vm_info(vm)->mac_prefix, "0a:0b:");
    cr_assert_eq(cfg_vm_info(vm)->nwarnings, 0, "%s", cfx_warnings(vm));
    cfg_vm_free(vm);
    cr_assert_eq(cfx_load("[vm0]\nmac_prefix = 02:01:\n", "vm0", "[KVM]\nmac_prefix = 0a:0b\n", &vm), 0,
                 "%s", cfx_err);
    cr_assert_str_eq(cfg_vm_info(vm)->mac_prefix, "02:01:"); /* the VM's own wins */
    cfg_vm_free(vm);

    vm = cfx_load_ok("[vm0]\nmem = size=512\n");
    cr_assert_null(cfg_vm_info(vm)->mac_prefix);
    cfg_vm_free(vm);
    cfx_load_err("[vm0]\nmac_prefix = 01:00:5e\n",
             F ":2:14: error: mac_prefix: '01:00:5e' is multicast (bit 0 of the first octet is set); a "
               "NIC's MAC must be unicast");
    cfx_load_err("[vm0]\nmac_prefix = 02:11:22:33:44:55\n",
             F ":2:14: error: mac_prefix: expected 1 to 5 hex octets like 02:11:22:, got "
               "'02:11:22:33:44:55'");
    cfx_load_err("[vm0]\nmac_prefix = pfx=02:11\n",
             F ":2:14: error: mac_prefix: expected prefix=OCTETS (or the octets alone)");
}

/* Issue 19 item 6: a migration port the cfg fixes is exported for the
 * fleet to lease (0 when allocated or without migration). */
Test(model, fixed_migration_port_exported)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nmigration = enable=yes,port=4444\n");
    cr_assert_eq(cfg_vm_info(vm)->migrate_port, 4444);
    cfg_vm_free(vm);
    vm = cfx_load_ok("[vm0]\nmigration = enable=yes\n");
    cr_assert_eq(cfg_vm_info(vm)->migrate_port, 0);
    cfg_vm_free(vm);
    vm = cfx_load_ok("[vm0]\nmigration = enable=no,port=4444\n");
    cr_assert_eq(cfg_vm_info(vm)->migrate_port, 0);
    cfg_vm_free(vm);
}

/* Issue 19 item 4: opt_vlan on a VF (pool or hand-picked) and opt_mac on a
 * hand-picked VF were warned and dropped; now the model carries them. */
/* --- masking ------------------------------------------------------------ */

/* The login password is masked wherever it appears, also twice (and back
 * to back) in one string: in the VM's JSON, the argv as JSON and as shell
 * text. Before, only an 8-guest end-to-end run caught a second copy. */
Test(mask, password_twice_in_one_string)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nlogin = user=root,password=S3cret\n"
                                "device = driver=vhost-user,opt_path=/tmp/S3cret/S3cretS3cret.sock\n"
                                "enable_kvm = enable=no\n");
    char *m = cfg_vm_mask(vm, "a S3cret b S3cret c");
    cr_assert_str_eq(m, "a ******** b ******** c");
    free(m);
    m = cfg_vm_mask(vm, "S3cretS3cret");
    cr_assert_str_eq(m, "****************");
    free(m);

    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    struct cfg_res res;
    memset(&res, 0, sizeof(res));
    res.run_dir = "/run/qf";
    for (int i = 0; i < nd.macs; i++)
        snprintf(res.macs[i], sizeof(res.macs[i]), "52:54:00:00:00:%02x", (unsigned)i + 1);
    for (int i = 0; i < nd.slots; i++)
        res.pci_slot[i] = 3 + i;
    for (int i = 0; i < nd.ports; i++)
        res.ssh_port[i] = 20001 + i;
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, cfx_err, sizeof(cfx_err)), 0, "%s", cfx_err);
    int raw = 0;
    for (int i = 0; argv[i]; i++)
        raw += strstr(argv[i], "/tmp/S3cret/S3cretS3cret.sock") != NULL;
    cr_assert_eq(raw, 1, "the argv itself keeps the password (QEMU needs the path)");
    char *shell = cfg_argv_shell(vm, argv);
    json_t *aj = cfg_argv_json(vm, argv), *vj = cfg_vm_json(vm, &res);
    char *as = json_dump(aj, NULL), *vs = json_dump(vj, NULL);
    const char *outs[] = { shell, as, vs };
    for (int i = 0; i < 3; i++) {
        cr_assert(outs[i]);
        cr_assert_null(strstr(outs[i], "S3cret"), "password in output %d: %s", i, outs[i]);
    }
    cr_assert(strstr(shell, "/tmp/********/****************.sock"), "%s", shell);
    cr_assert(strstr(as, "/tmp/********/****************.sock"), "%s", as);
    free(shell);
    free(as);
    free(vs);
    json_free(aj);
    json_free(vj);
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}

/* A hostfwd address is cfg text like any other: the VM's JSON (qfleet
 * cmdline --json) showed it unmasked. The fuzzer found it. */
Test(mask, hostfwd_address_in_vm_json)
{
    struct cfg_vm *vm = cfx_load_ok("[vm0]\nlogin = user=root,password=Pw9q\n"
                                "net = type=nic,opt_addr=1f;type=user,opt_hostfwd=tcp:Pw9q:2222-:22\n"
                                "enable_kvm = enable=no\n");
    json_t *vj = cfg_vm_json(vm, NULL);
    char *vs = json_dump(vj, NULL);
    cr_assert(vs);
    cr_assert_null(strstr(vs, "Pw9q"), "%s", vs);
    const json_t *fwd = json_get(json_at(json_get(vj, "nics"), 0), "hostfwd");
    cr_assert_str_eq(json_get_str(fwd, "addr"), "********", "%s", vs);
    free(vs);
    json_free(vj);
    cfg_vm_free(vm);
}
