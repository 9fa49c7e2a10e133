#!/bin/sh
# vordr node installer: `vordr-node.sh install` puts vordr on a node for
# containerd and Kubernetes, `vordr-node.sh uninstall` takes it off again.
# The DaemonSet in vordr-deploy.yaml runs it with the node's / at $HOST_ROOT;
# an operator can run it on the node itself (HOST_ROOT=).
#
# It copies the binaries, puts sample configs under /etc/vordr (never over an
# existing file), writes containerd's drop-in with `vordr config containerd`
# (containerd 2.x reads /etc/containerd/conf.d/*.toml; its config.toml is
# never edited, so uninstall leaves it byte-identical), restarts containerd
# only when the drop-in changed, and labels the node. Every path is an
# environment variable, so the whole procedure can be tested against a
# private containerd (integration/installer_test.go).
set -eu

HOST_ROOT=${HOST_ROOT-/host}                       # the node's / (empty: run on the node)
SRC_DIR=${SRC_DIR:-/opt/vordr}                     # what the installer image ships: bin/, etc/
BIN_DIR=${BIN_DIR:-/usr/local/bin}                 # node paths, as containerd sees them
VERIFIER_DIR=${VERIFIER_DIR:-/usr/local/libexec/vordr/image-verifier}
ETC_VORDR=${ETC_VORDR:-/etc/vordr}
CONFD=${CONFD:-/etc/containerd/conf.d}
STATE_DIR=${STATE_DIR:-/var/lib/vordr}
HANDLER=${HANDLER:-vordr}
SYSTEMD_CGROUP=${SYSTEMD_CGROUP:-auto}             # true | false | auto (true when the node runs systemd)
CONFIG_ARGS=${CONFIG_ARGS:-}                       # more flags for vordr config containerd
RESTART_CONTAINERD=${RESTART_CONTAINERD:-nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd}
NODE_LABEL=${NODE_LABEL:-vordr.io/runtime}

say() { echo "vordr-node: $*"; }
host() { echo "${HOST_ROOT}$1"; }

# put SRC DST MODE: copy atomically (a running shim keeps its old binary).
put() {
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.vordr-new"
	chmod "$3" "$2.vordr-new"
	mv -f "$2.vordr-new" "$2"
}

label() {
	[ -n "${NODE_NAME:-}" ] && command -v kubectl >/dev/null 2>&1 || return 0
	kubectl label node "$NODE_NAME" "$@" --overwrite >/dev/null && say "node $NODE_NAME: label $*"
}

install() {
	for b in containerd-shim-vordr-v1 vordr vordr-snapshotter; do
		put "$SRC_DIR/bin/$b" "$(host "$BIN_DIR/$b")" 0755
	done
	put "$SRC_DIR/bin/vordr-verifier" "$(host "$VERIFIER_DIR/vordr-verifier")" 0755
	for f in runtime.toml verifier.toml policies/strict.toml policies/permissive.toml; do
		dst=$(host "$ETC_VORDR/$f")
		if [ -e "$dst" ]; then say "keeping $dst"; else put "$SRC_DIR/etc/vordr/$f" "$dst" 0644; fi
	done
	mkdir -p "$(host "$ETC_VORDR/keys")"
	sc=$SYSTEMD_CGROUP
	if [ "$sc" = auto ]; then
		if [ -d "$(host /run/systemd/system)" ]; then sc=true; else sc=false; fi
	fi
	flag=""
	[ "$sc" = true ] && flag=--systemd-cgroup
	# shellcheck disable=SC2086 # CONFIG_ARGS is a list of flags
	out=$("$SRC_DIR/bin/vordr" config containerd --handler "$HANDLER" --bin-dir "$BIN_DIR" \
		--verifier-dir "$VERIFIER_DIR" $flag $CONFIG_ARGS --write "$(host "$CONFD/vordr.toml")")
	say "$out"
	mkdir -p "$(host "$STATE_DIR")"
	printf '%s\n' "$BIN_DIR/containerd-shim-vordr-v1" "$BIN_DIR/vordr" "$BIN_DIR/vordr-snapshotter" \
		"$VERIFIER_DIR/vordr-verifier" "$CONFD/vordr.toml" >"$(host "$STATE_DIR/installed")"
	case $out in
	*"is current"*) say "containerd config unchanged: no restart" ;;
	*) say "restarting containerd"; sh -c "$RESTART_CONTAINERD" ;;
	esac
	label "$NODE_LABEL=true"
}

uninstall() {
	list=$(host "$STATE_DIR/installed")
	if [ ! -e "$list" ]; then
		say "nothing installed by vordr-node.sh ($list missing)"
		return 0
	fi
	while IFS= read -r f; do
		[ -n "$f" ] && rm -f "$(host "$f")"
	done <"$list"
	rmdir "$(host "$VERIFIER_DIR")" 2>/dev/null || true
	rm -f "$list"
	say "removed; configs under $ETC_VORDR are kept. restarting containerd"
	sh -c "$RESTART_CONTAINERD"
	label "$NODE_LABEL-"
}

case "${1:-}" in
install) install ;;
uninstall) uninstall ;;
daemonset)
	# The vordr-deploy DaemonSet's container: install, then wait (a pod
	# restart must not take vordr off the node; vordr-cleanup.yaml does).
	install
	trap 'exit 0' TERM INT
	while :; do sleep 3600 & wait $!; done
	;;
*)
	echo "usage: $0 install|uninstall|daemonset" >&2
	exit 2
	;;
esac
