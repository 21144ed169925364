#!/usr/bin/env bash
# Installs real chrony and NTPsec programs for the interop tests into .peers/ (repo root), WITHOUT installing
# the packages: `apt-get download` into .peers/debs/, `dpkg -x` into .peers/root/. Installing chrony or ntpsec
# with apt-get would start a system daemon that reaches the internet and steps the clock, so this script never
# does that; it only installs missing shared libraries (and python3/iproute2 if absent) by package name.
#
# Idempotent: debs already present are not downloaded again, and the tree is only re-extracted when the set of
# debs changed. Prints one line per tool with its version; exits non-zero with a reason on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS="$PWD/.peers"
DEBS="$PEERS/debs"
ROOT="$PEERS/root"
PKGS=(chrony ntpsec python3-ntp ntpsec-ntpdig)
# apt's download sandbox user (_apt) cannot write into a root-owned project folder: download as root instead.
APT_OPTS=(-o APT::Sandbox::User=root -o Dpkg::Use-Pty=0)

die() {
  echo "install-peers: ERROR: $*" >&2
  exit 1
}
log() { echo "install-peers: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get download/install, and the interop tests use network namespaces)"
for tool in apt-get dpkg dpkg-deb dpkg-query ldd; do
  command -v "$tool" >/dev/null || die "'$tool' not found: this script needs a Debian-like system"
done

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    apt-get "${APT_OPTS[@]}" update -qq >&2 || die "apt-get update failed"
    apt_updated=1
  fi
}

deb_of() { # newest downloaded deb of a package, or nothing
  local f
  f=$(ls -1 "$DEBS/$1"_*.deb 2>/dev/null | sort -V | tail -n 1) || true
  echo "$f"
}

# 1. Download the packages that are not there yet.
mkdir -p "$DEBS"
missing=()
for p in "${PKGS[@]}"; do
  [ -n "$(deb_of "$p")" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "downloading ${missing[*]}"
  if ! (cd "$DEBS" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2); then
    apt_update_once
    (cd "$DEBS" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2) ||
      die "apt-get download ${missing[*]} failed (are the Debian package mirrors reachable?)"
  fi
fi
debs=()
for p in "${PKGS[@]}"; do
  d=$(deb_of "$p")
  [ -n "$d" ] || die "no .deb for $p in $DEBS after download"
  dpkg-deb --info "$d" >/dev/null 2>&1 || die "$d is not a valid .deb (delete it and run again)"
  debs+=("$d")
done

# 2. Extract (again only if the set of debs changed).
stamp="$(for d in "${debs[@]}"; do basename "$d"; done)"
if [ ! -f "$ROOT/.stamp" ] || [ "$(cat "$ROOT/.stamp")" != "$stamp" ]; then
  log "extracting into $ROOT"
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  for d in "${debs[@]}"; do
    dpkg -x "$d" "$ROOT" || die "dpkg -x $d failed"
  done
  printf '%s\n' "$stamp" >"$ROOT/.stamp"
fi

CHRONYD="$ROOT/usr/sbin/chronyd"
CHRONYC="$ROOT/usr/bin/chronyc"
NTPD="$ROOT/usr/sbin/ntpd"
NTPQ="$ROOT/usr/bin/ntpq"
NTPDIG="$ROOT/usr/bin/ntpdig"
PYPATH="$ROOT/usr/lib/python3/dist-packages"
for f in "$CHRONYD" "$CHRONYC" "$NTPD" "$NTPQ" "$NTPDIG"; do
  [ -f "$f" ] || die "$f missing after extraction"
done
[ -d "$PYPATH/ntp" ] || die "NTPsec Python module not found at $PYPATH/ntp"

# The ntp module loads libntpc.so with ctypes from its own folder, then the system library path, then the
# fixed Debian path /usr/lib/<multiarch>/ntp/: none of which is our tree. Link it next to the module.
libntpc=$(find "$ROOT/usr/lib" -name 'libntpc.so.*' -type f | head -n 1)
[ -n "$libntpc" ] || die "libntpc.so not found in the python3-ntp package"
ln -sfn "$(realpath --relative-to="$PYPATH/ntp" "$libntpc")" "$PYPATH/ntp/libntpc.so"

# 3. Shared libraries: install the library packages the debs depend on that are not installed yet.
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]; }
need=()
for d in "${debs[@]}"; do
  deps=$(dpkg-deb -f "$d" Depends)
  IFS=',' read -ra groups <<<"$deps"
  for g in "${groups[@]}"; do
    name=$(echo "${g%%|*}" | sed -e 's/(.*)//' -e 's/:any//' | tr -d ' ')
    case "$name" in
      lib*) installed "$name" || need+=("$name") ;;
    esac
  done
done
apt_install() {
  log "apt-get install -y $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "$@" >&2; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "$@" >&2 ||
      die "apt-get install $* failed"
  fi
}
if [ "${#need[@]}" -gt 0 ]; then
  apt_install $(printf '%s\n' "${need[@]}" | sort -u)
fi
for f in "$CHRONYD" "$CHRONYC" "$NTPD" "$libntpc"; do
  nf=$(ldd "$f" 2>&1 | grep 'not found' || true)
  [ -z "$nf" ] || die "$f misses shared libraries:
$nf"
done

# Tools the tests need besides the peers (normally part of Debian's base system).
command -v setpriv >/dev/null || apt_install util-linux
command -v ip >/dev/null || apt_install iproute2

# 4. A Python that can load the unpacked module. ntpq/ntpdig start with #!/usr/bin/python3; a pyenv python3
# earlier in PATH works too (the module is pure Python + ctypes), but Debian's interpreter is preferred.
pick_python() {
  local c
  for c in /usr/bin/python3 "$(command -v python3 || true)"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    if PYTHONPATH="$PYPATH" "$c" -c 'import ntp.ntpc, ntp.packet, ntp.util' >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
if ! PYTHON=$(pick_python); then
  [ -x /usr/bin/python3 ] || apt_install python3
  PYTHON=$(pick_python) || die "no python3 can import the NTPsec 'ntp' module from $PYPATH
($(PYTHONPATH="$PYPATH" /usr/bin/python3 -c 'import ntp.ntpc' 2>&1 | tail -n 1))"
fi

# 5. Every tool must run and report its version. None of these touches the clock.
version() { # name, command...
  local name=$1 out
  shift
  out=$("$@" 2>&1 | head -n 1) || die "$name does not run: $out"
  [ -n "$out" ] || die "$name printed no version"
  printf '%-8s %s\n' "$name" "$out"
}
version chronyd "$CHRONYD" -v
version chronyc "$CHRONYC" -v
version ntpd "$NTPD" --version
version ntpq env PYTHONPATH="$PYPATH" "$PYTHON" "$NTPQ" --version
version ntpdig env PYTHONPATH="$PYPATH" "$PYTHON" "$NTPDIG" --version
printf '%-8s %s (PYTHONPATH=%s)\n' python "$PYTHON" "$PYPATH"
