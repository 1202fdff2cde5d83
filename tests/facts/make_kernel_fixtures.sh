#!/bin/sh
# One-off (root, not CI): real iproute2 output for the parser tests from a private network
# namespace, nothing in the root namespace. Writes tests/fixtures/<spec>/kernel-netns.out and
# tests/fixtures/pcap-facts/two-ifaces.pcapng (dumpcap on two veths while arping).
set -e
out=$(cd "$(dirname "$0")/../fixtures" && pwd)
work=$(mktemp -d)
cd "$work"
unshare --net sh -c '
set -e
ip link set lo up
ip link add veth0 type veth peer name veth1
ip link add veth2 type veth peer name veth3
for i in veth0 veth1 veth2 veth3; do ip link set $i up; done
ip addr add 192.0.2.1/24 dev veth0
ip addr add 198.51.100.1/24 dev veth2
ip -6 addr add 2001:db8::1/64 dev veth0 nodad
ip route add 203.0.113.0/24 nexthop via 192.0.2.2 dev veth0 weight 1 nexthop via 198.51.100.2 dev veth2 weight 2
ip route add blackhole 10.99.0.0/26 proto 12
ip route add unreachable 10.98.0.0/16
ip route add prohibit 10.97.0.0/16
ip route add default via 192.0.2.254 metric 100
ip route add 10.96.0.0/12 via 198.51.100.2 table 2004 proto static
ip route add 10.11.0.0/24 via 192.0.2.2 onlink dev veth0 metric 32 proto bird
ip -6 route add 2001:db8:1::/64 via 2001:db8::2 metric 1024
ip rule add fwmark 0x200/0xf00 table 2004 priority 9
ip rule add from 10.11.0.0/24 lookup main priority 100
ip rule add not to 10.0.0.0/8 unreachable priority 200
ip link add vx0 type vxlan id 42 local 192.0.2.1 dstport 8472 dev veth0 nolearning
ip link set vx0 mtu 1450 up
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.2
bridge fdb add 0a:00:00:00:00:01 dev vx0 dst 192.0.2.3 self permanent
ip neigh add 192.0.2.7 lladdr 0a:00:00:00:00:07 dev veth0 nud permanent
ip neigh add 192.0.2.8 lladdr 0a:00:00:00:00:08 dev veth0 nud stale
ip neigh add 192.0.2.9 dev veth0 nud incomplete || true
ip -j -4 route show table all > ip-route-v4.out
ip -j -6 route show table all > ip-route-v6.out
ip -j -4 rule > ip-rule-v4.out
ip -j neigh > ip-neigh.out
ip -j -d link > ip-link.out
ip -j -d addr > ip-addr.out
bridge -j fdb > bridge-fdb.out
ip -V > ip-version.out
'
for spec in ip-route-v4 ip-route-v6 ip-rule-v4 ip-neigh ip-link ip-addr bridge-fdb ip-version; do
  cp "$spec.out" "$out/$spec/kernel-netns.out"
done
unshare --net sh -c '
ip link set lo up
ip link add veth0 type veth peer name veth1; ip link add veth2 type veth peer name veth3
for i in veth0 veth1 veth2 veth3; do ip link set $i up; done
ip addr add 192.0.2.1/24 dev veth0; ip addr add 192.0.2.2/24 dev veth1
ip addr add 198.51.100.1/24 dev veth2; ip addr add 198.51.100.2/24 dev veth3
dumpcap -q -i veth1 -i veth3 -a duration:3 -w two-ifaces.pcapng >/dev/null 2>&1 &
sleep 1
arping -c 2 -I veth0 192.0.2.2 >/dev/null 2>&1 || true
arping -c 3 -I veth2 198.51.100.2 >/dev/null 2>&1 || true
wait
'
cp two-ifaces.pcapng "$out/pcap-facts/two-ifaces.pcapng"
rm -rf "$work"
