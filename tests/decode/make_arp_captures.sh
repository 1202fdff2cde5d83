#!/bin/sh
# One-off (root, not CI): real kernel ARP captures for the one ARP rule (diag/decode/arp.py),
# recorded in private network namespaces (nothing in the root namespace), written to
# tests/fixtures/arp-rule/ (see SOURCE.md there). Three VTEPs A, B, C on one underlay bridge
# (192.0.2.0/24), each with a VXLAN device (VNI 100, port 4789, flooding to the two others:
# head-end replication) holding an overlay address 198.18.0.{1,2,3}/24.
# A asks (arping, 3 requests each, 1 s apart): 198.18.0.2 (B answers), 198.18.0.99 (nobody).
# (VLANs need the 8021q module, which this script does not load: the VLAN case is crafted, see
# tests/decode/test_arp_rule.py.)
#   a-any.pcap      tcpdump -i any on A: every request bare on vxlan0 and twice encapsulated
#   a-any-out.pcap  tcpdump -i any -Q out on A: the same, one direction only
#   c-any.pcap      tcpdump -i any on C: A's flooded requests arrive, B's unicast replies do not
set -e
out=$(cd "$(dirname "$0")/../fixtures" && pwd)/arp-rule
mkdir -p "$out"
work=$(mktemp -d)
p=fiarp$$
ns() { ip netns exec "$p$1" sh -c "$2"; }
cleanup() {
  for n in A B C S; do ip netns pids "$p$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
                       ip netns del "$p$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for n in A B C S; do ip netns add "$p$n"; ns "$n" "ip link set lo up"; done
ns S "ip link add ul type bridge; ip link set ul up"
i=1
for n in A B C; do
  ip link add eth0 netns "$p$n" type veth peer name "u$n" netns "${p}S"
  ns S "ip link set u$n master ul up"
  ns "$n" "ip link set eth0 up; ip addr add 192.0.2.$i/24 dev eth0
           ip link add vxlan0 type vxlan id 100 dstport 4789 local 192.0.2.$i dev eth0
           ip link set vxlan0 address 02:00:00:00:01:0$i up; ip addr add 198.18.0.$i/24 dev vxlan0"
  for j in 1 2 3; do
    [ "$j" = "$i" ] || ns "$n" "bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.0.2.$j"
  done
  i=$((i + 1))
done
cd "$work"
ns A "tcpdump -q -i any -y LINUX_SLL2 -w a-any.pcap arp or udp port 4789 >/dev/null 2>&1 &
      tcpdump -q -i any -y LINUX_SLL2 -Q out -w a-any-out.pcap arp or udp port 4789 >/dev/null 2>&1 &"
ns C "tcpdump -q -i any -y LINUX_SLL2 -w c-any.pcap arp or udp port 4789 >/dev/null 2>&1 &"
sleep 2
ns A "arping -q -c 3 -W 1 -i vxlan0 198.18.0.2 || true; arping -q -c 3 -W 1 -i vxlan0 198.18.0.99 || true
"
sleep 4
for n in A C; do ip netns pids "$p$n" | xargs -r kill -INT; done
sleep 1
cp a-any.pcap a-any-out.pcap c-any.pcap "$out/"
echo "written to $out"
