#!/bin/sh
# Runtime test for the OpenWrt packages feed CI: called as `test.sh PKG_NAME PKG_VERSION`
# after the package is installed.
case "$1" in
routerd)
	routerd --version | grep -Fx "$2" || routerd --version | grep -F "${2%%-*}"
	;;
routerd-plugin-event-to-remote-claim)
	echo '{"kind":"PluginRequest","spec":{"events":[{"id":"e","type":"routerd.client.ipv4.observed","subject":"10.88.60.9/32"}]}}' \
		| /usr/libexec/routerd/plugins/event-to-remote-claim/bin/event-to-remote-claim | grep -q onprem-10-88-60-9
	;;
esac
