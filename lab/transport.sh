# The guest -> host file transport over the serial console, sourced by scenarios.sh and
# bench.sh. The host side is xtask/src/vm.rs `parse_console`.
#
# emit DIR FILE...: each existing $OUT/DIR/FILE between "@@NOTIFY-FILE-BEGIN DIR/FILE" and
# "@@NOTIFY-FILE-END DIR/FILE" lines (a newline added when the file lacks a final one).
emit() {
	for f in "$@"; do
		[ -f "$OUT/$1/$f" ] || continue
		echo "@@NOTIFY-FILE-BEGIN $1/$f"
		cat "$OUT/$1/$f"
		[ -n "$(tail -c 1 "$OUT/$1/$f")" ] && echo
		echo "@@NOTIFY-FILE-END $1/$f"
	done
}
