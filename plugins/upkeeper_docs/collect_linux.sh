# upkeeper docs.collect: facts of a Linux host in one round trip. POSIX sh, read-only.
# Each section starts with a marker on stdout and stderr so both can be split per section.
# Only what the facts need leaves the host: no config file contents, environments or
# command lines (ss -p gives process names; resolv.conf only its nameserver lines).
LC_ALL=C; LANG=C; export LC_ALL LANG
PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"; export PATH
s() { echo "@@upk-docs:$1"; echo "@@upk-docs:$1" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
# A hung network mount, a dead DNS server, a locked package database or a stuck D-Bus
# must not hang the whole collection: `lim SECONDS command...` says when it gave up
# (a "!" line fails that section rather than leave it half read).
lim() {
  l_s=$1; shift
  if have timeout; then timeout "$l_s" "$@"; else "$@"; fi
  l_r=$?
  [ "$l_r" = 124 ] && echo "!timed out after ${l_s}s: $1"
  return "$l_r"
}
t() { lim 10 "$@"; }
s now; date +%s
s uid; id -u
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s fqdn; t hostname -f 2>/dev/null
s machine_id; cat /etc/machine-id 2>/dev/null || cat /var/lib/dbus/machine-id
s dmi
if [ -d /sys/class/dmi/id ]; then
  for f in product_uuid product_serial sys_vendor product_name chassis_serial board_serial; do
    if [ -r "/sys/class/dmi/id/$f" ] && v=$(cat "/sys/class/dmi/id/$f" 2>/dev/null); then
      printf '%s=%s\n' "$f" "$v"
    elif [ -e "/sys/class/dmi/id/$f" ]; then printf '%s!unreadable\n' "$f"; fi
  done
else echo '!nodmi'; fi
s virt
if have systemd-detect-virt; then echo "detect=$(systemd-detect-virt 2>/dev/null)"; fi
grep -qs '^flags.* hypervisor' /proc/cpuinfo && echo 'cpuflag=hypervisor'
[ -r /proc/xen/capabilities ] && echo 'xen=yes'
s os_release
for f in /etc/os-release /usr/lib/os-release; do
  [ -r "$f" ] && { grep -E '^(ID|ID_LIKE|NAME|VERSION|VERSION_ID|PRETTY_NAME)=' "$f"; break; }
done
s kernel; uname -r
s uptime; cat /proc/uptime
s install
have rpm && echo "rpm=$(rpm -q --qf '%{INSTALLTIME}\n' basesystem 2>/dev/null | head -1)"
echo "birth=$(stat -c %W / 2>/dev/null)"
[ -d /var/log/installer ] && echo "installer=$(stat -c %Y /var/log/installer 2>/dev/null)"
s lscpu; have lscpu && lscpu
s cpuinfo; grep -E '^(processor|model name|Processor|cpu model|physical id|core id)[[:space:]]*:|^$' /proc/cpuinfo
s meminfo; grep -E '^(MemTotal|MemAvailable|MemFree):' /proc/meminfo
s loadavg; cat /proc/loadavg
s lsblk
if have lsblk; then
  t lsblk -d -b -P -o NAME,TYPE,SIZE,MODEL,SERIAL 2>/dev/null || t lsblk -d -b -P -o NAME,TYPE,SIZE,MODEL
else echo '!missing lsblk'; fi
s df; if t df -PkT / >/dev/null 2>&1; then t df -PkT; else t df -Pk; fi
s links; if have ip; then ip -o link show; else echo '!missing ip'; fi
s addrs; have ip && ip -o addr show
s routes; have ip && { ip route show default; ip -6 route show default; }
s dns
grep -sE '^[[:space:]]*nameserver[[:space:]]' /etc/resolv.conf
if grep -qsE '^[[:space:]]*nameserver[[:space:]]+127\.0\.0\.53' /etc/resolv.conf; then
  grep -sE '^[[:space:]]*nameserver[[:space:]]' /run/systemd/resolve/resolv.conf | sed 's/^/upstream /'
fi
s ports
if have ss; then t ss -tulpnH 2>/dev/null || t ss -tulpn
elif have netstat; then echo '#netstat'; t netstat -tulpn
else echo '!missing ss and netstat'; fi
s software
if have dpkg-query; then echo '#dpkg'
  lim 60 dpkg-query -W -f='${db:Status-Abbrev}\t${binary:Package}\t${Version}\t${Architecture}\n'
elif have rpm; then echo '#rpm'
  lim 60 rpm -qa --qf '%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n'
else echo '!missing dpkg-query and rpm'; fi
s unit_files
if have systemctl; then t systemctl list-unit-files --type=service --no-legend --no-pager
else echo '!missing systemctl'; fi
s units
have systemctl && t systemctl list-units --type=service --all --no-legend --no-pager --plain
s admins
have getent || echo '!missing getent'
for g in sudo wheel admin; do
  line=$(t getent group "$g" 2>/dev/null) || continue
  printf '%s\n' "$line" | cut -d: -f1,3,4
  gid=$(printf '%s\n' "$line" | cut -d: -f3)
  t getent passwd 2>/dev/null | awk -F: -v gid="$gid" -v g="$g" '$4 == gid { print "primary:" g ":" $1 }'
done
s end
