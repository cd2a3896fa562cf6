#!/bin/bash
# Capture the kernel vxlan device's own encapsulation on an underlay veth.
set -u
A=vxcapA$$; B=vxcapB$$
cleanup(){ ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add ua netns $A type veth peer name ub netns $B
ip -n $A link set ua address 02:00:00:00:0a:01; ip -n $B link set ub address 02:00:00:00:0b:01
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A addr add 192.0.2.1/24 dev ua; ip -n $B addr add 192.0.2.2/24 dev ub
ip -n $A addr add 2001:db8::1/64 dev ua nodad; ip -n $B addr add 2001:db8::2/64 dev ub nodad
ip -n $A link set ua up; ip -n $B link set ub up
ip netns exec $A ethtool -K ua tx off >/dev/null; ip netns exec $B ethtool -K ub tx off >/dev/null
mk(){ # ns name args...
  local ns=$1 dev=$2 mac=$3 addr=$4; shift 4
  ip -n $ns link add $dev "$@"
  ip -n $ns link set $dev address $mac
  ip -n $ns addr add $addr dev $dev
  ip -n $ns link set $dev up
}
mk $A vx4 02:00:00:00:42:01 10.42.0.1/24 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dstport 4789
mk $B vx4 02:00:00:00:42:02 10.42.0.2/24 type vxlan id 42 local 192.0.2.2 remote 192.0.2.1 dstport 4789
mk $A vxd 02:00:00:00:43:01 10.43.0.1/24 type vxlan id 4660 local 192.0.2.1 remote 192.0.2.2 dstport 4789 df set ttl 17 tos 0x10
mk $B vxd 02:00:00:00:43:02 10.43.0.2/24 type vxlan id 4660 local 192.0.2.2 remote 192.0.2.1 dstport 4789 df set ttl 17 tos 0x10
mk $A vx6 02:00:00:00:66:01 10.66.0.1/24 type vxlan id 16777215 local 2001:db8::1 remote 2001:db8::2 dstport 4789
mk $B vx6 02:00:00:00:66:02 10.66.0.2/24 type vxlan id 16777215 local 2001:db8::2 remote 2001:db8::1 dstport 4789
# static neighbours: no ARP inside the overlay, so the first frame is the ICMP echo
ip -n $A neigh replace 10.42.0.2 lladdr 02:00:00:00:42:02 dev vx4
ip -n $A neigh replace 10.43.0.2 lladdr 02:00:00:00:43:02 dev vxd
ip -n $A neigh replace 10.66.0.2 lladdr 02:00:00:00:66:02 dev vx6
ip -n $A neigh replace 192.0.2.2 lladdr 02:00:00:00:0b:01 dev ua
ip -n $A neigh replace 2001:db8::2 lladdr 02:00:00:00:0b:01 dev ua
sleep 1
ip netns exec $B tcpdump -i ub -w /tmp/vxcap/kernel.pcap -U 'udp port 4789' 2>/tmp/vxcap/tcpdump.err &
TD=$!
sleep 1.5
ip netns exec $A ping -c 1 -W 1 -p 5258 10.42.0.2 | grep -c "1 received"
ip netns exec $A ping -c 1 -W 1 -p 5258 10.43.0.2 | grep -c "1 received"
ip netns exec $A ping -c 1 -W 1 -p 5258 10.66.0.2 | grep -c "1 received"
sleep 0.5
kill $TD; wait $TD
ip -n $A -d link show vx4 | head -3
