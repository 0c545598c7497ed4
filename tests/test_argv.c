/* test_argv.c - golden QEMU command lines for every cfg parameter, the DTS
 * document's sample VM, escaping, usercmd quoting, the resource struct,
 * and that the login password never shows. Argv arrays are compared whole
 * (joined by '\n'; no generated argument contains a newline). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/vm.h"
#include "base/json.h"
#include "testutil.h"

#define F "/cfgdir/t.cfg"

static char err[1024];
static char tmpdir[256];
static char mounts[512];

/* A fake mounts table with a hugetlbfs at "/mnt/huge pages,2M" (escaped
 * as the kernel does: \040 for the space). */
static void setup_mounts(void)
{
    cr_assert_eq(tu_mkdtemp(tmpdir, sizeof(tmpdir), "argv"), 0);
    snprintf(mounts, sizeof(mounts), "%s/mounts", tmpdir);
    FILE *f = fopen(mounts, "w");
    cr_assert_not_null(f);
    fputs("proc /proc proc rw 0 0\n"
          "hugetlbfs /mnt/huge\\040pages,2M hugetlbfs rw,relatime,pagesize=2M 0 0\n"
          "hugetlbfs /dev/hugepages1G hugetlbfs rw,pagesize=1024M 0 0\n", f);
    fclose(f);
}

static void teardown_mounts(void) { tu_rmtree(tmpdir); }

TestSuite(argv, .init = setup_mounts, .fini = teardown_mounts);

static struct cfg_vm *vm_at(const char *path, const char *text)
{
    struct cfg_doc *d;
    struct cfg_vm *vm;
    cr_assert_eq(cfg_doc_parse(path, text, strlen(text), &d, err, sizeof(err)), 0, "%s", err);
    int r = cfg_vm_from_docs(d, "vm0", NULL, &vm, err, sizeof(err));
    cfg_doc_free(d);
    cr_assert_eq(r, 0, "%s", err);
    return vm;
}

static struct cfg_vm *vm_of(const char *text) { return vm_at(F, text); }

/* The fixed resources the goldens use. */
static void res_fill(struct cfg_res *res)
{
    memset(res, 0, sizeof(*res));
    res->run_dir = "/run/qf";
    for (int i = 0; i < CFG_MAC_MAX; i++)
        snprintf(res->macs[i], sizeof(res->macs[i]), "52:54:00:00:00:%02x", (unsigned)(i + 1) & 0xffu);
    for (int i = 0; i < CFG_SLOT_MAX; i++)
        res->pci_slot[i] = 3 + i;
    for (int i = 0; i < CFG_NIC_MAX; i++)
        res->ssh_port[i] = 20001 + i;
    res->vnc = 7;
    res->migrate_port = 30001;
    res->mounts_file = mounts;
}

static char *joined(char **argv)
{
    size_t n = 1;
    for (char **a = argv; *a; a++)
        n += strlen(*a) + 1;
    char *s = malloc(n), *p = s;
    for (char **a = argv; *a; a++)
        p += sprintf(p, "%s\n", *a);
    *p = 0;
    return s;
}

static void golden_res(struct cfg_vm *vm, const struct cfg_res *res, const char *want)
{
    char **argv;
    int r = cfg_argv_build(vm, res, &argv, err, sizeof(err));
    cr_assert_eq(r, 0, "build: %s", err);
    char *got = joined(argv);
    cr_assert_str_eq(got, want);
    free(got);
    cfg_argv_free(argv);
}

static void golden(const char *text, const char *want)
{
    struct cfg_vm *vm = vm_of(text);
    struct cfg_res res;
    res_fill(&res);
    golden_res(vm, &res, want);
    cfg_vm_free(vm);
}

/* Pieces of the default command line of [vm0]. */
#define HEAD(accel) "qemu-system-x86_64\n-name\nvm0\n-machine\npc\n-accel\n" accel "\n"
#define MEM "-m\n1024\n"
#define VNC7 "-vnc\n127.0.0.1:7\n-device\nVGA,id=vga0,addr=02.0\n"
#define MONS                                                                                       \
    "-serial\nfile:/run/qf/vm0-serial.log\n"                                                       \
    "-chardev\nsocket,id=qmp0,path=/run/qf/vm0-qmp.sock,server=on,wait=off\n"                      \
    "-mon\nchardev=qmp0,mode=control\n"                                                            \
    "-chardev\nsocket,id=qmp1,path=/run/qf/vm0-qmp-inspect.sock,server=on,wait=off\n"              \
    "-mon\nchardev=qmp1,mode=control\n"
#define HC(mac, port)                                                                              \
    "-netdev\nuser,id=net0,hostfwd=tcp:127.0.0.1:" port "-:22\n"                                   \
    "-device\ne1000,netdev=net0,id=host_connect,mac=" mac ",addr=1f.0\n"
#define HC1 HC("52:54:00:00:00:01", "20001")
#define QGA                                                                                        \
    "-device\nvirtio-serial-pci,id=vser0\n"                                                        \
    "-chardev\nsocket,id=qga0,path=/run/qf/vm0-qga.sock,server=on,wait=off\n"                      \
    "-device\nvirtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0port\n"
#define TCG "enable_kvm = enable=no\n"

Test(argv, minimal_vm)
{
    golden("[vm0]\n", HEAD("kvm") MEM "-nodefaults\n" VNC7 MONS HC1 QGA);
}

Test(argv, dts_document_sample)
{
    struct cfg_vm *vm = vm_of(
        "# vm configuration for vhost sample case\n"
        "[vm0]\n"
        "cpu =\n"
        "   model=host,number=2,cpupin=24 25;\n"
        "mem =\n"
        "    size=4096,hugepage=yes;\n"
        "disk =\n"
        "    file=/home/img/vm0.img;\n"
        "login =\n"
        "    user=root,password=tester;\n"
        "vnc =\n"
        "    displayNum=1;\n"
        "device =\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nwarnings, 0);
    cr_assert_eq(vi->ncpupin, 2);
    cr_assert_eq(vi->cpupin[0], 24);
    cr_assert_eq(vi->cpupin[1], 25);
    cr_assert_str_eq(vi->user, "root");
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.macs, 1); /* only host_connect: both vhost-user MACs are given */
    cr_assert_eq(nd.slots, 2);
    cr_assert_eq(nd.vnc, 0);
    cr_assert_eq(nd.hugepages, 1);
    struct cfg_res res;
    res_fill(&res);
    golden_res(vm, &res,
        "qemu-system-x86_64\n-name\nvm0\n-machine\npc\n-accel\nkvm\n"
        "-cpu\nhost\n-smp\n2\n-m\n4096\n"
        "-object\nmemory-backend-file,id=mem,size=4096M,mem-path=/mnt/huge pages,,2M,share=on,prealloc=on\n"
        "-numa\nnode,memdev=mem\n"
        "-nodefaults\n"
        "-vnc\n127.0.0.1:1\n-device\nVGA,id=vga0,addr=02.0\n"
        MONS
        "-drive\nfile=/home/img/vm0.img\n"
        HC1
        "-chardev\nsocket,id=char0,path=/cfgdir/vhost-net\n"
        "-netdev\ntype=vhost-user,id=netdev0,chardev=char0,vhostforce=on\n"
        "-device\nvirtio-net-pci,netdev=netdev0,id=vhostuser0,mac=00:00:20:00:00:20,addr=03.0\n"
        "-chardev\nsocket,id=char1,path=/cfgdir/vhost-net\n"
        "-netdev\ntype=vhost-user,id=netdev1,chardev=char1,vhostforce=on\n"
        "-device\nvirtio-net-pci,netdev=netdev1,id=vhostuser1,mac=00:00:20:00:00:21,addr=04.0\n"
        QGA);
    cfg_vm_free(vm);
}

Test(argv, dts_sample_devices_added_through_set)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" TCG "vnc = disable=yes\nqga = enable=no\nmem = size=256\n");
    cr_assert_eq(cfg_vm_set(vm, "device",
                            "driver=vhost-user,opt_path=/tmp/vhost-net,opt_mac=00:00:20:00:00:20",
                            err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg_vm_set(vm, "device",
                            "driver=vhost-user,opt_path=/tmp/vhost-net,opt_mac=00:00:20:00:00:21,"
                            "opt_queues=2,opt_server=yes",
                            err, sizeof(err)), 0, "%s", err);
    struct cfg_res res;
    res_fill(&res);
    golden_res(vm, &res,
        HEAD("tcg") "-m\n256\n"
        "-object\nmemory-backend-memfd,id=mem,size=256M,share=on\n-numa\nnode,memdev=mem\n"
        "-nodefaults\n-display\nnone\n" MONS HC1
        "-chardev\nsocket,id=char0,path=/tmp/vhost-net\n"
        "-netdev\ntype=vhost-user,id=netdev0,chardev=char0,vhostforce=on\n"
        "-device\nvirtio-net-pci,netdev=netdev0,id=vhostuser0,mac=00:00:20:00:00:20,addr=03.0\n"
        "-chardev\nsocket,id=char1,path=/tmp/vhost-net,server=on\n"
        "-netdev\ntype=vhost-user,id=netdev1,chardev=char1,vhostforce=on,queues=2\n"
        "-device\nvirtio-net-pci,netdev=netdev1,id=vhostuser1,mac=00:00:20:00:00:21,addr=04.0,mq=on,vectors=6\n");
    cfg_vm_free(vm);
}

Test(argv, scalar_keys)
{
    golden("[vm0]\n"
           "name = name=guest-1\n"
           "enable_kvm = enable=no\n"
           "machine = type=pc-i440fx-7.2\n"
           "qemu = path=/opt/qemu/bin/qemu-system-x86_64\n"
           "cpu = model=Skylake-Client,number=4\n"
           "mem = size=2048\n"
           "vnc = displayNum=3\n"
           "qga = enable=no\n"
           "start = wait_seconds=30\n"
           "serial_port = enable=yes\n",
           "/opt/qemu/bin/qemu-system-x86_64\n-name\nguest-1\n-machine\npc-i440fx-7.2\n-accel\ntcg\n"
           "-cpu\nSkylake-Client\n-smp\n4\n-m\n2048\n-nodefaults\n"
           "-vnc\n127.0.0.1:3\n-device\nVGA,id=vga0,addr=02.0\n"
           "-serial\nfile:/run/qf/guest-1-serial.log\n"
           "-chardev\nsocket,id=qmp0,path=/run/qf/guest-1-qmp.sock,server=on,wait=off\n"
           "-mon\nchardev=qmp0,mode=control\n"
           "-chardev\nsocket,id=qmp1,path=/run/qf/guest-1-qmp-inspect.sock,server=on,wait=off\n"
           "-mon\nchardev=qmp1,mode=control\n" HC1);
    golden("[vm0]\nmachine = machine=q35\nnet = type=nic,opt_addr=2;type=user\nvnc = disable=yes\n",
           "qemu-system-x86_64\n-name\nvm0\n-machine\nq35\n-accel\nkvm\n" MEM
           "-nodefaults\n-display\nnone\n" MONS
           "-netdev\nuser,id=net0,hostfwd=tcp:127.0.0.1:20001-:22\n"
           "-device\ne1000,netdev=net0,id=nic0,mac=52:54:00:00:00:01,addr=02.0\n" QGA);
}

Test(argv, disks_and_kernel)
{
    golden("[vm0]\n" TCG
           "disk =\n"
           "    file=img/root.qcow2,opt_format=qcow2,opt_if=virtio;\n"
           "    file=/iso/a.iso,opt_if=ide,opt_index=2,opt_media=cdrom\n"
           "kernel = file=/boot/vmlinuz,initrd=initrd.img,append=console=ttyS0 root=/dev/vda quiet\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS
           "-kernel\n/boot/vmlinuz\n-initrd\n/cfgdir/initrd.img\n-append\nconsole=ttyS0 root=/dev/vda quiet\n"
           "-drive\nfile=/cfgdir/img/root.qcow2,format=qcow2,if=virtio\n"
           "-drive\nfile=/iso/a.iso,if=ide,index=2,media=cdrom\n" HC1 QGA);
    /* DTS's own kernel options */
    golden("[vm0]\n" TCG "kernel = kernel_img=/k,console=ttyAMA0,baudrate=115200,root=/dev/vda2\nqga = enable=no\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS
           "-kernel\n/k\n-append\nconsole=ttyAMA0,115200 root=/dev/vda2\n" HC1);
}

Test(argv, net_types)
{
    struct cfg_vm *vm = vm_of(
        "[vm0]\n" TCG "qga = enable=no\nvnc = disable=yes\n"
        "net =\n"
        "    type=nic,opt_addr=1f,opt_vlan=0;\n"
        "    type=user,opt_vlan=0;\n"
        "    type=nic,opt_model=virtio,opt_macaddr=52:54:00:AB:CD:EF,opt_name=data0,opt_vectors=6;\n"
        "    type=user,opt_hostfwd=udp:10.0.0.1:5555-10.0.2.15:53;\n"
        "    type=nic,opt_model=e1000e,opt_addr=0x08.0;\n"
        "    type=tap;\n"
        "    type=nic,opt_model=rtl8139;\n"
        "    type=tap,opt_script=no,opt_downscript=./down.sh;\n"
        "    type=nic;\n"
        "    type=bridge,opt_br=virbr0;\n");
    struct cfg_res res;
    res_fill(&res);
    char tap2[16], tap3[16];
    cfg_tap_ifname(vm, &res, 2, tap2);
    cfg_tap_ifname(vm, &res, 3, tap3);
    cr_assert_eq(strlen(tap2), 12);
    cr_assert_str_neq(tap2, tap3);
    cr_assert_eq(strncmp(tap2, tap3, 10), 0);
    char want[4096];
    snprintf(want, sizeof(want),
        HEAD("tcg") MEM "-nodefaults\n-display\nnone\n" MONS
        HC1
        "-netdev\nuser,id=net1,hostfwd=udp:10.0.0.1:5555-10.0.2.15:53\n"
        "-device\nvirtio-net-pci,netdev=net1,id=data0,mac=52:54:00:ab:cd:ef,addr=03.0,vectors=6\n"
        "-netdev\ntap,id=net2,ifname=%s,script=/etc/qemu-ifup,downscript=/etc/qemu-ifdown\n"
        "-device\ne1000e,netdev=net2,id=nic2,mac=52:54:00:00:00:02,addr=08.0\n"
        "-netdev\ntap,id=net3,ifname=%s,script=no,downscript=/cfgdir/down.sh\n"
        "-device\nrtl8139,netdev=net3,id=nic3,mac=52:54:00:00:00:03,addr=04.0\n"
        "-netdev\nbridge,id=net4,br=virbr0\n"
        "-device\ne1000,netdev=net4,id=nic4,mac=52:54:00:00:00:04,addr=05.0\n",
        tap2, tap3);
    golden_res(vm, &res, want);
    const char *addr;
    int port;
    cr_assert_eq(cfg_vm_ssh(vm, &res, &addr, &port), 0);
    cr_assert_str_eq(addr, "127.0.0.1");
    cr_assert_eq(port, 20001);
    cfg_vm_free(vm);
}

Test(argv, devices)
{
    struct cfg_vm *vm = vm_of(
        "[vm0]\n" TCG "qga = enable=no\n"
        "device =\n"
        "    driver=pci-assign,opt_host=07:10.0;\n"
        "    driver=vfio-pci,opt_host=0000:81:02.1,opt_addr=6;\n"
        "    driver=e1000,opt_id=pt_5;\n"
        "    driver=virtio-net-pci,opt_netdev=mynet1,opt_id=net1,opt_mac=00:00:00:00:01:03,"
        "opt_bus=pci.0,opt_addr=0x9,opt_legacy=on,opt_settings=csum=off;\n"
        "    driver=virtio-net-pci;\n"
        "usercmd = cmd=-netdev user,id=mynet1\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nwarnings, 1, "%s", vi->nwarnings ? vi->warnings[0] : ""); /* pci-assign */
    cr_assert_eq(vi->npt, 3);
    struct cfg_res res;
    res_fill(&res);
    cr_assert_eq(cfg_pt_slot(&vi->pt[0], &res), 3);
    cr_assert_eq(cfg_pt_slot(&vi->pt[1], &res), 6);
    cr_assert_eq(cfg_pt_slot(&vi->pt[2], &res), 4);
    golden_res(vm, &res,
        HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1
        "-device\nvfio-pci,host=0000:07:10.0,id=pt_0,addr=03.0\n"
        "-device\nvfio-pci,host=0000:81:02.1,id=pt_1,addr=06.0\n"
        "-device\ne1000,id=pt_5,mac=52:54:00:00:00:02,addr=04.0\n"
        "-device\nvirtio-net-pci,netdev=mynet1,id=net1,mac=00:00:00:00:01:03,bus=pci.0,addr=09.0,"
        "disable-modern=on,csum=off\n"
        "-device\nvirtio-net-pci,id=dev4,mac=52:54:00:00:00:03,addr=05.0\n"
        "-netdev\nuser,id=mynet1\n");
    cfg_vm_free(vm);
}

/* Issue 19 item 5: function 0 of a slot with other functions says
 * multifunction=on (QEMU refuses 05.1 without it); a slot with one
 * function and a slot on another bus do not count. */
Test(argv, multifunction_on_function_zero)
{
    golden("[vm0]\n" TCG "qga = enable=no\n"
           "device =\n"
           "    driver=vfio-pci,opt_host=81:02.1,opt_addr=05.1;\n"
           "    driver=vfio-pci,opt_host=81:02.0,opt_addr=05.0;\n"
           "    driver=e1000,opt_addr=06.0;\n"
           "    driver=e1000,opt_bus=br1,opt_addr=07.1;\n"
           "    driver=e1000,opt_addr=07.0\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1
           "-device\nvfio-pci,host=0000:81:02.1,id=pt_0,addr=05.1\n"
           "-device\nvfio-pci,host=0000:81:02.0,id=pt_1,addr=05.0,multifunction=on\n"
           "-device\ne1000,id=dev2,mac=52:54:00:00:00:02,addr=06.0\n"
           "-device\ne1000,id=dev3,mac=52:54:00:00:00:03,bus=br1,addr=07.1\n"
           "-device\ne1000,id=dev4,mac=52:54:00:00:00:04,addr=07.0\n");
}

Test(argv, vnc_qga_migration_usercmd)
{
    golden("[vm0]\n" TCG "migration = enable=yes,port=\n"
           "usercmd =\n"
           "    cmd=-device virtio-rng-pci,id=rng0;\n"
           "    cmd=-fw_cfg \"name=opt/t,string=a b\" -global 'isa-debugcon.iobase=0x402' x\\ y \"q\\\"uote\"\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1 QGA
           "-incoming\ntcp::30001\n"
           "-device\nvirtio-rng-pci,id=rng0\n"
           "-fw_cfg\nname=opt/t,string=a b\n-global\nisa-debugcon.iobase=0x402\nx y\nq\"uote\n");
    golden("[vm0]\n" TCG "migration = enable=yes,port=4444\nvnc =\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1 QGA "-incoming\ntcp::4444\n");
    /* listen= narrows DTS's every-address listen */
    golden("[vm0]\n" TCG "migration = enable=yes,port=4444,listen=127.0.0.1\nvnc =\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1 QGA "-incoming\ntcp:127.0.0.1:4444\n");
}

Test(argv, commas_are_doubled_in_option_lists)
{
    /* commas cannot be written in a cfg value (',' splits options), but the
     * cfg's directory, the run dir and the hugetlbfs mount may hold them */
    struct cfg_vm *vm = vm_at("/cfg,dir/t.cfg",
                              "[vm0]\n" TCG "qga = enable=no\nvnc = disable=yes\n"
                              "disk = file=a.img\n"
                              "device = driver=vhost-user,opt_path=sock,opt_mac=00:00:20:00:00:20\n");
    struct cfg_res res;
    res_fill(&res);
    res.run_dir = "/run/a,b";
    golden_res(vm, &res,
        HEAD("tcg") MEM
        "-object\nmemory-backend-memfd,id=mem,size=1024M,share=on\n-numa\nnode,memdev=mem\n"
        "-nodefaults\n-display\nnone\n"
        "-serial\nfile:/run/a,b/vm0-serial.log\n" /* -serial file: takes the path verbatim */
        "-chardev\nsocket,id=qmp0,path=/run/a,,b/vm0-qmp.sock,server=on,wait=off\n"
        "-mon\nchardev=qmp0,mode=control\n"
        "-chardev\nsocket,id=qmp1,path=/run/a,,b/vm0-qmp-inspect.sock,server=on,wait=off\n"
        "-mon\nchardev=qmp1,mode=control\n"
        "-drive\nfile=/cfg,,dir/a.img\n" HC1
        "-chardev\nsocket,id=char0,path=/cfg,,dir/sock\n"
        "-netdev\ntype=vhost-user,id=netdev0,chardev=char0,vhostforce=on\n"
        "-device\nvirtio-net-pci,netdev=netdev0,id=vhostuser0,mac=00:00:20:00:00:20,addr=03.0\n");
    cfg_vm_free(vm);
}

Test(argv, resources_are_checked_and_named)
{
    struct cfg_vm *vm = vm_of("[vm0]\ndevice = driver=e1000\nmem = hugepage=yes\n");
    struct cfg_res res;
    char **argv;
    res_fill(&res);
    res.run_dir = "run";
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: run_dir must be an absolute path");
    res_fill(&res);
    strcpy(res.macs[1], "ff:ff:ff:ff:ff:ff");
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: macs[1] 'ff:ff:ff:ff:ff:ff' (for device 0 dev0) is not a unicast MAC");
    res_fill(&res);
    res.pci_slot[0] = 0x1f;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: pci_slot[0]=31 (for device 0 dev0) is not a free guest slot (taken: 0x80000007)");
    res_fill(&res);
    res.ssh_port[0] = 0;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: ssh_port[0]=0 (for net 0 host_connect: tcp forward to guest port 22) is not a port");
    res_fill(&res);
    res.run_dir = "/a/very/long/run/directory/that/does/not/fit/into/the/sun_path/of/a/unix/socket/address/at/all";
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    res_fill(&res);
    char nomounts[600];
    snprintf(nomounts, sizeof(nomounts), "%s/none", tmpdir);
    FILE *f = fopen(nomounts, "w");
    fputs("proc /proc proc rw 0 0\n", f);
    fclose(f);
    res.mounts_file = nomounts;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -ENOENT);
    char want[1024];
    snprintf(want, sizeof(want), F ":3:16: error: mem hugepage=yes needs a hugetlbfs mount; there is none in %s", nomounts);
    cr_assert_str_eq(err, want);
    res.hugepage_dir = "/hp";
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    cfg_argv_free(argv);
    /* an instance name for the fleet's copies of one cfg VM */
    res.name = "vm0-2";
    char p[256];
    cr_assert_eq(cfg_run_path(vm, &res, CFG_RUN_QMP, p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/run/qf/vm0-2-qmp.sock");
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(argv[2], "vm0-2");
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}

Test(argv, preview_fills_everything)
{
    struct cfg_vm *vm = vm_of("[vm0]\nnet = type=nic,opt_addr=1f;type=user;type=nic;type=user,opt_hostfwd=::-:80\n"
                              "device = driver=vfio-pci,opt_host=1:0.0\nmigration = enable=yes\n");
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, "/run/p", &res, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(res.macs[0], "52:54:00:ff:ff:00");
    cr_assert_str_eq(res.macs[1], "52:54:00:ff:ff:01");
    cr_assert_eq(res.pci_slot[0], 3); /* 0-2 taken (VGA at 2), first fit */
    cr_assert_eq(res.pci_slot[1], 4);
    cr_assert_geq(res.ssh_port[0], CFG_PREVIEW_SSH_FIRST);
    cr_assert_gt(res.ssh_port[1], res.ssh_port[0]);
    cr_assert_geq(res.migrate_port, CFG_PREVIEW_MIGRATE_FIRST);
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}

/* --- the password never shows ------------------------------------------ */

static void no_secret(const char *s, const char *what)
{
    cr_assert_null(strstr(s, "S3cr3tpw"), "%s shows the password: %s", what, s);
}

Test(argv, password_never_shown)
{
    struct cfg_vm *vm = vm_of("[vm0]\nlogin = user=root,password=S3cr3tpw\n"
                              "usercmd = cmd=-fw_cfg name=opt/pw,string=S3cr3tpw\n"
                              "cpu = model=host,S3cr3tpw=1\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_str_eq(vi->password, "S3cr3tpw"); /* the fleet gets it */
    for (int i = 0; i < vi->nwarnings; i++)
        no_secret(vi->warnings[i], "a warning");
    struct cfg_res res;
    res_fill(&res);
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    json_t *j = cfg_vm_json(vm, &res);
    char *s = json_dump(j, NULL);
    no_secret(s, "cfg_vm_json");
    cr_assert(strstr(s, "\"password\":\"********\"") != NULL, "%s", s);
    free(s);
    json_free(j);
    j = cfg_argv_json(vm, argv);
    s = json_dump(j, NULL);
    no_secret(s, "cfg_argv_json");
    cr_assert(strstr(s, "string=********") != NULL, "%s", s);
    free(s);
    json_free(j);
    s = cfg_argv_shell(vm, argv);
    no_secret(s, "cfg_argv_shell");
    free(s);
    cfg_argv_free(argv);
    /* a bad login value is reported without its text */
    cr_assert_eq(cfg_vm_set(vm, "login", "user=root,password=S3cr3tpw,password=x", err, sizeof(err)), -EINVAL);
    no_secret(err, "an error");
    cr_assert_eq(cfg_vm_set(vm, "cpu", "model=S3cr3tpw x", err, sizeof(err)), -EINVAL);
    no_secret(err, "an error");
    cr_assert_str_eq(err, "<set cpu>:1:7: error: cpu model: expected a name of letters, digits and '_.+-', got '******** x'");
    cfg_vm_free(vm);
}

Test(argv, shell_quoting_for_people)
{
    char *argv[] = { "qemu", "-append", "console=ttyS0 quiet", "it's", "", "a,b=c:d", NULL };
    char *s = cfg_argv_shell(NULL, argv);
    cr_assert_str_eq(s, "qemu \\\n    -append \\\n    'console=ttyS0 quiet' \\\n    'it'\\''s' \\\n"
                        "    '' \\\n    a,b=c:d\n");
    free(s);
}

Test(argv, host_cpu_model_under_tcg)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" TCG "cpu = model=host\nqga = enable=no\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    cr_assert_eq(vi->nwarnings, 1);
    cr_assert_str_eq(vi->warnings[0],
                     F ":3:13: warning: cpu: model=host needs KVM; using model=max since enable_kvm=no");
    struct cfg_res res;
    res_fill(&res);
    golden_res(vm, &res, HEAD("tcg") "-cpu\nmax\n" MEM "-nodefaults\n" VNC7 MONS HC1);
    cfg_vm_free(vm);
}

Test(argv, dts_spellings_and_ignored_options)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" TCG "qga = enable=no\nvnc = disable=yes\n"
                              "machine = machine=pc,opt_gic_version=3\n"
                              "migration = port=4444\n"
                              "net = type=nic,opt_addr=1f;type=user;type=nic;type=tap,opt_br=br1\n"
                              "device = driver=vhost-user,opt_path=/v,opt_mac=00:00:20:00:00:20,"
                              "opt_queue=4,opt_server=server\n");
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    /* the tap's bridge is kept for the fleet to attach it, not warned */
    cr_assert_eq(vi->nwarnings, 2);
    cr_assert_str_eq(vi->warnings[0],
                     F ":5:22: warning: machine: opt_gic_version is for Arm machines; ignored");
    cr_assert_str_eq(vi->warnings[1], F ":6:1: warning: migration: ignored without enable=yes");
    cr_assert_str_eq(vi->nics[1].bridge, "br1");
    cr_assert_eq(vi->nics[1].attach_bridge, 1);
    cr_assert_eq(vi->nics[0].attach_bridge, 0);
    struct cfg_res res;
    res_fill(&res);
    char tap[16], want[4096];
    cfg_tap_ifname(vm, &res, 1, tap);
    snprintf(want, sizeof(want),
             HEAD("tcg") MEM
             "-object\nmemory-backend-memfd,id=mem,size=1024M,share=on\n-numa\nnode,memdev=mem\n"
             "-nodefaults\n-display\nnone\n" MONS HC1
             "-netdev\ntap,id=net1,ifname=%s,script=/etc/qemu-ifup,downscript=/etc/qemu-ifdown\n"
             "-device\ne1000,netdev=net1,id=nic1,mac=52:54:00:00:00:02,addr=03.0\n"
             "-chardev\nsocket,id=char0,path=/v,server=on\n"
             "-netdev\ntype=vhost-user,id=netdev0,chardev=char0,vhostforce=on,queues=4\n"
             "-device\nvirtio-net-pci,netdev=netdev0,id=vhostuser0,mac=00:00:20:00:00:20,"
             "addr=04.0,mq=on,vectors=10\n",
             tap);
    golden_res(vm, &res, want);
    cfg_vm_free(vm);
}

/* --- VFs from SR-IOV pools ------------------------------------------------ */

#define POOLS "vf_pool = name=net1,pf=ens1f0 ens1f1;name=net2,pf=ens2f0\n"

Test(argv, vf_from_a_pool)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" TCG "qga = enable=no\n" POOLS
                              "device =\n"
                              "    driver=vfio-pci,opt_pool=net1\n"
                              "    driver=vfio-pci,opt_host=81:10.0\n"
                              "    driver=pci-assign,opt_pool=net2,opt_mac=02:00:00:00:00:07,"
                              "opt_addr=9,opt_id=pt_7\n");
    struct cfg_res res;
    res_fill(&res);
    strcpy(res.vf_host[0], "0000:3b:02.1");
    strcpy(res.vf_host[1], "3c:10.0"); /* canonicalised on the command line */
    /* vfio-pci has no mac property: the VF's MAC is set on the host */
    golden_res(vm, &res,
        HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1
        "-device\nvfio-pci,host=0000:3b:02.1,id=pt_0,addr=03.0\n"
        "-device\nvfio-pci,host=0000:81:10.0,id=pt_1,addr=04.0\n"
        "-device\nvfio-pci,host=0000:3c:10.0,id=pt_7,addr=09.0\n");
    /* the VF's MAC lease comes after the host_connect NIC's */
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    cr_assert_eq(nd.macs, 2);
    cr_assert_str_eq(cfg_vf_mac(&nd, &res, 0), "52:54:00:00:00:02");
    cr_assert_str_eq(cfg_vf_mac(&nd, &res, 1), "02:00:00:00:00:07");

    /* the model as JSON shows the pools and the leased host address */
    json_t *j = cfg_vm_json(vm, &res);
    char *s = json_dump(j, NULL);
    cr_assert(strstr(s, "\"vf_pools\":[{\"name\":\"net1\",\"pf\":[\"ens1f0\",\"ens1f1\"]},"
                        "{\"name\":\"net2\",\"pf\":[\"ens2f0\"]}]"), "%s", s);
    cr_assert(strstr(s, "{\"id\":\"pt_0\",\"driver\":\"vfio-pci\",\"host\":\"0000:3b:02.1\","
                        "\"pool\":\"net1\",\"addr\":\"0000:00:03.0\"}"), "%s", s);
    cr_assert(strstr(s, "\"host\":\"0000:81:10.0\",\"pool\":null"), "%s", s);
    free(s);
    json_free(j);

    /* a missing or bad VF address is a resource error naming the device */
    char **argv;
    res.vf_host[1][0] = '\0';
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: vf_host[1] '' (for device 2 pt_7) is not a host PCI address");
    memset(res.vf_host[0], 'a', sizeof(res.vf_host[0])); /* no NUL */
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: vf_host[0] 'aaaaaaaaaaaa' (for device 0 pt_0) is not a host PCI address");
    cfg_vm_free(vm);
}

Test(argv, vf_preview_is_a_placeholder)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" POOLS "device = driver=vfio-pci,opt_pool=net2;"
                              "driver=vfio-pci,opt_pool=net2\n");
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, "/run/p", &res, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(res.vf_host[0], "ffff:ff:00.0");
    cr_assert_str_eq(res.vf_host[1], "ffff:ff:00.1");
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    int found = 0;
    for (char **a = argv; *a; a++)
        found += !strncmp(*a, "vfio-pci,host=ffff:ff:00.", 25);
    cr_assert_eq(found, 2);
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}

/* --- DTS constructs (issue 12) ------------------------------------------- */

Test(argv, net_groups_pair_in_either_order)
{
    /* user first: one NIC, as DTS pairs groups by position */
    golden("[vm0]\n" TCG "net = type=user,opt_vlan=0;type=nic,opt_vlan=0,opt_model=virtio\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS
           "-netdev\nuser,id=net0,hostfwd=tcp:127.0.0.1:20001-:22\n"
           "-device\nvirtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01,addr=03.0\n" QGA);
    golden("[vm0]\n" TCG "net = type=user;type=nic;type=nic,opt_addr=1f;type=user\n",
           HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS
           "-netdev\nuser,id=net0,hostfwd=tcp:127.0.0.1:20001-:22\n"
           "-device\ne1000,netdev=net0,id=nic0,mac=52:54:00:00:00:01,addr=03.0\n"
           "-netdev\nuser,id=net1,hostfwd=tcp:127.0.0.1:20002-:22\n"
           "-device\ne1000,netdev=net1,id=host_connect,mac=52:54:00:00:00:02,addr=1f.0\n" QGA);
}

Test(argv, crypto_pflash_settings_and_memory_size)
{
    golden("[vm0]\n" TCG "qga = enable=no\nmem = size=2G\n"
           "pflash = file=/fw/code.fd;file=./vars.fd\n"
           "crypto = enable=yes,opt_num=2\n"
           "device = driver=vhost-user,opt_path=/v,opt_mac=00:00:20:00:00:20,"
           "opt_settings=mrg_rxbuf=on,mq=on,opt_legacy=no\n",
           HEAD("tcg") "-m\n2048\n"
           "-object\nmemory-backend-memfd,id=mem,size=2048M,share=on\n-numa\nnode,memdev=mem\n"
           "-nodefaults\n" VNC7 MONS
           "-drive\nfile=/fw/code.fd,if=pflash,format=raw\n"
           "-drive\nfile=/cfgdir/vars.fd,if=pflash,format=raw\n" HC1
           "-chardev\nsocket,id=char0,path=/v\n"
           "-netdev\ntype=vhost-user,id=netdev0,chardev=char0,vhostforce=on\n"
           "-device\nvirtio-net-pci,netdev=netdev0,id=vhostuser0,mac=00:00:20:00:00:20,"
           "addr=03.0,disable-modern=off,mrg_rxbuf=on,mq=on\n"
           "-chardev\nsocket,id=cryptochr0,path=/tmp/vm0_crypto0.sock\n"
           "-object\ncryptodev-vhost-user,id=cryptodev0,chardev=cryptochr0\n"
           "-device\nvirtio-crypto-pci,id=crypto0,cryptodev=cryptodev0\n"
           "-chardev\nsocket,id=cryptochr1,path=/tmp/vm0_crypto1.sock\n"
           "-object\ncryptodev-vhost-user,id=cryptodev1,chardev=cryptochr1\n"
           "-device\nvirtio-crypto-pci,id=crypto1,cryptodev=cryptodev1\n");
    /* the socket follows the instance name */
    struct cfg_vm *vm = vm_of("[vm0]\ncrypto = enable=yes\n");
    struct cfg_res res;
    res_fill(&res);
    res.name = "vm0-3";
    char p[64];
    cr_assert_eq(cfg_crypto_path(vm, &res, 0, p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/tmp/vm0-3_crypto0.sock");
    cr_assert_eq(cfg_crypto_path(vm, &res, 1, p, sizeof(p)), -EINVAL);
    cr_assert_eq(cfg_vm_info(vm)->ncrypto, 1);
    cfg_vm_free(vm);
}

Test(argv, scene_vfs_and_pfs)
{
    struct cfg_vm *vm = vm_of("[vm0]\n" TCG "qga = enable=no\n"
                              "vf_pool = name=port0,pf=ens1f0;name=port1,pf=ens2f0\n"
                              "device =\n"
                              "    vf_idx=0,pf_dev=0,guestpci=auto,mac=00:00:00:00:01:01;\n"
                              "    pf_idx=1,guestpci=6;\n");
    struct cfg_res res;
    res_fill(&res);
    strcpy(res.vf_host[0], "0000:3b:02.0");
    strcpy(res.pf_host[0], "5e:00.0");
    golden_res(vm, &res,
        HEAD("tcg") MEM "-nodefaults\n" VNC7 MONS HC1
        "-device\nvfio-pci,host=0000:3b:02.0,id=pt_0,addr=03.0\n"
        "-device\nvfio-pci,host=0000:5e:00.0,id=pt_1,addr=06.0\n");
    json_t *j = cfg_vm_json(vm, &res);
    char *s = json_dump(j, NULL);
    cr_assert(strstr(s, "{\"id\":\"pt_1\",\"driver\":\"vfio-pci\",\"host\":\"5e:00.0\","
                        "\"pool\":\"port1\",\"whole_pf\":true,\"addr\":\"0000:00:06.0\"}"), "%s", s);
    free(s);
    json_free(j);
    char **argv;
    res.pf_host[0][0] = 0;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "res: pf_host[0] '' (for device 1 pt_1) is not a host PCI address");
    cr_assert_eq(cfg_res_preview(vm, "/run/p", &res, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(res.pf_host[0], "ffff:fe:00.0");
    cr_assert_str_eq(res.vf_host[0], "ffff:ff:00.0");
    cfg_vm_free(vm);
}

Test(argv, json_stays_valid_with_non_utf8_bytes)
{
    struct cfg_vm *vm = vm_of("[vm0]\ndisk = file=/img/caf\xe9\xc3.img\nname = name=vm0\n");
    struct cfg_res res;
    res_fill(&res);
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    json_t *j = cfg_argv_json(vm, argv);
    char *s = json_dump(j, NULL);
    cr_assert_not_null(s);
    cr_assert(strstr(s, "\"file=/img/caf\xef\xbf\xbd\xef\xbf\xbd.img\""), "%s", s);
    char perr[128];
    json_t *back = json_parse(s, strlen(s), perr, sizeof(perr));
    cr_assert_not_null(back, "%s", perr);
    json_free(back);
    free(s);
    json_free(j);
    cfg_argv_free(argv);
    cfg_vm_free(vm);
}
