#!/bin/sh
# A Nagios-style plugin: the 1-minute load average per CPU against WARN and CRIT.
# Exit 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN; first line = summary | perfdata.
warn="$1"; crit="$2"
read -r load _ < /proc/loadavg || { echo "UNKNOWN - cannot read /proc/loadavg"; exit 3; }
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
per=$(awk -v l="$load" -v c="$cpus" 'BEGIN { printf "%.2f", l / c }')
perf="load1=$load;$warn;$crit"
if awk -v p="$per" -v c="$crit" 'BEGIN { exit !(p >= c) }'; then
  echo "CRITICAL - load $per per CPU | $perf"; exit 2
elif awk -v p="$per" -v w="$warn" 'BEGIN { exit !(p >= w) }'; then
  echo "WARNING - load $per per CPU | $perf"; exit 1
fi
echo "OK - load $per per CPU | $perf"
exit 0
