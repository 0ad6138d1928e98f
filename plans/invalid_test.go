package plans

import (
	"testing"
)

// The lines of a minimal valid plan. Cases rewrite one of them or append
// sections from line 6 on.
const (
	head        = "name: web\nversion: \"1.0\"\n"                                         // lines 1-2
	hostsLine   = "hosts: [{name: web1, address: 10.0.0.1}]\n"                            // line 3
	releaseLine = "release: {artifact: app.tar.gz, path: /srv/app, restart: /bin/true}\n" // line 4
	healthLine  = "health: {command: \"true\"}\n"                                         // line 5

	base = head + hostsLine + releaseLine + healthLine
	tail = releaseLine + healthLine // what follows the hosts
)

const safeRule = `(letters, digits and . _ + -, starting with a letter or digit, at most 128 characters)`

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string // extra files beside the plan
		src   string
		want  string
	}{
		{
			name: "unknown top-level key",
			src:  base + "colour: blue\n",
			want: "plan.yaml:6:1: colour: unknown key; expected one of name, version, hosts, inventory, ssh, load_balancer, strategy, release, health, rollback, hooks, secrets, notify, analysis",
		},
		{
			name: "unknown nested key with a suggestion",
			src:  base + "strategy: {batchs: 2}\n",
			want: `plan.yaml:6:12: strategy.batchs: unknown key; did you mean "batch"?`,
		},
		{
			name: "wrong type: name is a list",
			src:  "name: [web]\n" + base[len("name: web\n"):],
			want: "plan.yaml:1:7: name: must be a string, got a list",
		},
		{
			name: "version written as a number",
			src:  "name: web\nversion: 2.10\n" + base[len(head):],
			want: `plan.yaml:2:10: version: must be a string, got 2.10 (quote it: "2.10")`,
		},
		{
			name: "duration without a unit",
			src:  base + "strategy: {pause: 5}\n",
			want: `plan.yaml:6:19: strategy.pause: must be a duration like "200ms" or "30s", got 5`,
		},
		{
			name: "duration that is not one",
			src:  base + "ssh: {connect_timeout: fast}\n",
			want: `plan.yaml:6:24: ssh.connect_timeout: must be a duration like "200ms" or "30s", got "fast"`,
		},
		{
			name: "negative pause",
			src:  base + "strategy: {pause: -1s}\n",
			want: `plan.yaml:6:19: strategy.pause: must not be negative, got "-1s"`,
		},
		{
			name: "percentage over 100",
			src:  base + "strategy: {batch: \"150%\"}\n",
			want: `plan.yaml:6:19: strategy.batch: a percentage must be between 1% and 100%, got "150%"`,
		},
		{
			name: "zero percent in a ramp",
			src:  base + "strategy: {batches: [1, 0%]}\n",
			want: `plan.yaml:6:25: strategy.batches[1]: a percentage must be between 1% and 100%, got "0%"`,
		},
		{
			name: "batch 0",
			src:  base + "strategy:\n  batch: 0\n",
			want: `plan.yaml:7:10: strategy.batch: must be a positive count or a percentage like "25%", got 0`,
		},
		{
			name: "batch is not a size",
			src:  base + "strategy:\n  batch: two\n",
			want: `plan.yaml:7:10: strategy.batch: must be a positive count or a percentage like "25%", got "two"`,
		},
		{
			name: "batch and batches both",
			src:  base + "strategy:\n  batch: 2\n  batches: [1, 2]\n",
			want: "plan.yaml:8:3: strategy: set batch or batches, not both",
		},
		{
			name: "empty batches",
			src:  base + "strategy: {batches: []}\n",
			want: `plan.yaml:6:21: strategy.batches: must be a non-empty list of batch sizes like [1, 5, "20%"], got an empty list`,
		},
		{
			name: "negative max_failures",
			src:  base + "strategy: {max_failures: -1}\n",
			want: `plan.yaml:6:26: strategy.max_failures: must be a count (0 or more) or a percentage like "10%", got -1`,
		},
		{
			name: "max_failures over the host count",
			src:  base + "strategy: {max_failures: 2}\n",
			want: "plan.yaml:6:26: strategy.max_failures: must not exceed the number of hosts (1), got 2",
		},
		{
			name: "empty host list",
			src:  head + "hosts: []\n" + tail,
			want: "plan.yaml:3:8: hosts: must list at least one host, got an empty list",
		},
		{
			name: "hosts is not a list",
			src:  head + "hosts: web1\n" + tail,
			want: `plan.yaml:3:8: hosts: must be a list of hosts (each with name and address), got "web1"`,
		},
		{
			name: "empty host name",
			src:  head + "hosts: [{name: \"\", address: 10.0.0.1}]\n" + tail,
			want: "plan.yaml:3:16: hosts[0].name: must not be empty",
		},
		{
			name: "unsafe host name",
			src:  head + "hosts: [{name: web/1, address: 10.0.0.1}]\n" + tail,
			want: `plan.yaml:3:16: hosts[0].name: must be a safe name ` + safeRule + `, got "web/1"`,
		},
		{
			name: "duplicate host names",
			src: head + `hosts:
  - name: web1
    address: 10.0.0.1
  - name: web1
    address: 10.0.0.2
` + tail,
			want: `plan.yaml:6:11: hosts[1].name: duplicate host name "web1" (also hosts[0], line 4)`,
		},
		{
			name: "duplicate addresses once the port is defaulted",
			src: head + `hosts:
  - name: web1
    address: 10.0.0.1
  - name: web2
    address: 10.0.0.1:22
` + tail,
			want: "plan.yaml:7:14: hosts[1].address: duplicate address 10.0.0.1:22 (also hosts[0], line 5)",
		},
		{
			name: "duplicate lb_server",
			src: head + `hosts:
  - {name: web1, address: 10.0.0.1, lb_server: web/a}
  - {name: web2, address: 10.0.0.2, lb_server: web/a}
load_balancer: {haproxy: {socket: /run/haproxy.sock}}
` + tail,
			want: "plan.yaml:5:48: hosts[1].lb_server: duplicate lb_server web/a (also hosts[0], line 4)",
		},
		{
			name: "host port out of range",
			src:  head + "hosts: [{name: web1, address: \"10.0.0.1:99999\"}]\n" + tail,
			want: `plan.yaml:3:31: hosts[0].address: port must be a number between 1 and 65535, got "10.0.0.1:99999"`,
		},
		{
			name: "host address with a user",
			src:  head + "hosts: [{name: web1, address: deploy@10.0.0.1}]\n" + tail,
			want: `plan.yaml:3:31: hosts[0].address: must be host or host:port; put the user in ssh.user, got "deploy@10.0.0.1"`,
		},
		{
			name: "host address that is a URL",
			src:  head + "hosts: [{name: web1, address: \"ssh://10.0.0.1\"}]\n" + tail,
			want: `plan.yaml:3:31: hosts[0].address: must be host or host:port without a scheme, got "ssh://10.0.0.1"`,
		},
		{
			name: "host address with a bad name",
			src:  head + "hosts: [{name: web1, address: -web.example.com}]\n" + tail,
			want: `plan.yaml:3:31: hosts[0].address: must be host or host:port, got "-web.example.com"`,
		},
		{
			name: "bad transport",
			src:  head + "hosts: [{name: web1, address: 10.0.0.1, transport: sftp}]\n" + tail,
			want: `plan.yaml:3:52: hosts[0].transport: must be ssh or agent, got "sftp"`,
		},
		{
			name: "bad host_key_checking",
			src:  base + "ssh: {host_key_checking: no}\n",
			want: `plan.yaml:6:26: ssh.host_key_checking: must be strict or accept-new, got "no"`,
		},
		{
			name: "missing identity file",
			src:  base + "ssh: {identity_file: ~/.ssh/nope}\n",
			want: `plan.yaml:6:22: ssh.identity_file: file $DIR/home/.ssh/nope does not exist`,
		},
		{
			name: "lb_server without a load balancer",
			src:  head + "hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]\n" + tail,
			want: "plan.yaml:3:41: hosts[0].lb_server: set, but no load_balancer is configured: the host would never be drained; add load_balancer.haproxy or remove lb_server",
		},
		{
			name: "missing lb_server with a load balancer",
			src: head + `hosts:
  - {name: web1, address: 10.0.0.1}
load_balancer: {haproxy: {socket: /run/haproxy.sock}}
` + tail,
			want: `plan.yaml:4:5: hosts[0]: missing required key "lb_server" (the HAProxy <backend>/<server>, required because load_balancer is set)`,
		},
		{
			name: "lb_server not backend/server",
			src: head + `hosts:
  - {name: web1, address: 10.0.0.1, lb_server: web1}
load_balancer: {haproxy: {socket: /run/haproxy.sock}}
` + tail,
			want: `plan.yaml:4:48: hosts[0].lb_server: must be <backend>/<server> as named in HAProxy, like web/web1, got "web1"`,
		},
		{
			name: "haproxy with socket and address",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer:
  haproxy:
    socket: /run/haproxy.sock
    address: 127.0.0.1:9999
` + tail,
			want: "plan.yaml:7:5: load_balancer.haproxy: set socket or address, not both",
		},
		{
			name: "haproxy with neither socket nor address",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer: {haproxy: {}}
` + tail,
			want: "plan.yaml:4:26: load_balancer.haproxy: needs socket (a unix socket path) or address (host:port) of the runtime API",
		},
		{
			name: "haproxy address without a port",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer: {haproxy: {address: 127.0.0.1}}
` + tail,
			want: `plan.yaml:4:36: load_balancer.haproxy.address: must be host:port of the runtime API, like 127.0.0.1:9999, got "127.0.0.1"`,
		},
		{
			name: "haproxy list: the second instance without a port",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer:
  haproxy:
    - socket: /run/haproxy.sock
    - address: 10.0.0.3
` + tail,
			want: `plan.yaml:7:16: load_balancer.haproxy[1].address: must be host:port of the runtime API, like 127.0.0.1:9999, got "10.0.0.3"`,
		},
		{
			name: "haproxy list: the same instance twice",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer:
  haproxy:
    - {address: 10.0.0.3:9999}
    - {address: 10.0.0.3:9999}
` + tail,
			want: `plan.yaml:7:7: load_balancer.haproxy[1]: the same runtime API as an earlier instance (10.0.0.3:9999)`,
		},
		{
			name: "haproxy list: empty",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer: {haproxy: []}
` + tail,
			want: `plan.yaml:4:26: load_balancer.haproxy: an empty list; give the runtime API of each HAProxy instance, like [{socket: /run/haproxy/admin.sock}]`,
		},
		{
			name: "haproxy list: an entry that is not a mapping",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer:
  haproxy:
    - /run/haproxy.sock
` + tail,
			want: `plan.yaml:6:7: load_balancer.haproxy[0]: must be a mapping with socket (a unix socket path) or address (host:port), got "/run/haproxy.sock"`,
		},
		{
			name: "haproxy: a string",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer: {haproxy: /run/haproxy.sock}
` + tail,
			want: `plan.yaml:4:26: load_balancer.haproxy: must be the runtime API (a mapping with socket or address) or a list of them, one per HAProxy instance, got "/run/haproxy.sock"`,
		},
		{
			name: "concurrency 0",
			src: head + `hosts: [{name: web1, address: 10.0.0.1}]
strategy: {concurrency: 0}
` + tail,
			want: `plan.yaml:4:25: strategy.concurrency: must be between 1 and 1024, got 0`,
		},
		{
			name: "bad on_drain_timeout",
			src: head + `hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}]
load_balancer:
  haproxy: {socket: /run/haproxy.sock}
  on_drain_timeout: ignore
` + tail,
			want: `plan.yaml:6:21: load_balancer.on_drain_timeout: must be fail or force, got "ignore"`,
		},
		{
			name: "artifact that does not exist",
			src:  head + hostsLine + "release: {artifact: build/missing.tar.gz, path: /srv/app, restart: /bin/true}\n" + healthLine,
			want: "plan.yaml:4:21: release.artifact: file $DIR/build/missing.tar.gz does not exist",
		},
		{
			name:  "artifact that is a directory",
			files: map[string]string{"build/x": "x"},
			src:   head + hostsLine + "release: {artifact: build, path: /srv/app, restart: /bin/true}\n" + healthLine,
			want:  "plan.yaml:4:21: release.artifact: $DIR/build is a directory, expected a .tar.gz file",
		},
		{
			name: "relative release path",
			src:  head + hostsLine + "release: {artifact: app.tar.gz, path: srv/app, restart: /bin/true}\n" + healthLine,
			want: `plan.yaml:4:39: release.path: must be an absolute path like /srv/app, got "srv/app"`,
		},
		{
			name: "release path at the root",
			src:  head + hostsLine + "release: {artifact: app.tar.gz, path: /, restart: /bin/true}\n" + healthLine,
			want: "plan.yaml:4:39: release.path: must not be the root directory",
		},
		{
			name: "keep 0",
			src:  head + hostsLine + "release: {artifact: app.tar.gz, path: /srv/app, restart: /bin/true, keep: 0}\nhealth: {command: \"true\"}\n",
			want: "plan.yaml:4:75: release.keep: must be at least 1, got 0",
		},
		{
			name: "negative strip_components",
			src:  head + hostsLine + "release:\n  artifact: app.tar.gz\n  path: /srv/app\n  restart: /bin/true\n  strip_components: -1\nhealth: {command: \"true\"}\n",
			want: "plan.yaml:8:21: release.strip_components: must be between 0 and 64, got -1",
		},
		{
			name: "missing nested required key",
			src:  head + hostsLine + "release: {path: /srv/app, restart: /bin/true}\n" + healthLine,
			want: `plan.yaml:4:10: release: missing required key "artifact" (the release tarball, relative to the plan file)`,
		},
		{
			name: "missing top-level key",
			src:  "# the web tier\nname: web\nhosts: [{name: web1, address: 10.0.0.1}]\n" + tail,
			want: `plan.yaml:1:1: missing required key "version" (the release being rolled out, e.g. "2.0.1")`,
		},
		{
			name: "unsafe version",
			src:  "name: web\nversion: \"../x\"\n" + base[len(head):],
			want: `plan.yaml:2:10: version: must be a safe directory name ` + safeRule + `, got "../x"`,
		},
		{
			name: "unsafe name",
			src:  "name: a/b\n" + base[len("name: web\n"):],
			want: `plan.yaml:1:7: name: must be a safe name ` + safeRule + `, got "a/b"`,
		},
		{
			name: "health without a check",
			src:  head + hostsLine + releaseLine + "health: {interval: 1s}\n",
			want: "plan.yaml:5:9: health: needs exactly one check: http, tcp or command",
		},
		{
			name: "health with two checks",
			src:  head + hostsLine + releaseLine + "health:\n  command: \"true\"\n  tcp: {port: 80}\n",
			want: "plan.yaml:7:3: health.tcp: only one check may be set; command is already set",
		},
		{
			name: "deadline shorter than interval",
			src:  head + hostsLine + releaseLine + "health: {command: \"true\", interval: 5s, deadline: 2s}\n",
			want: "plan.yaml:5:51: health.deadline: must be at least health.interval (5s), got 2s",
		},
		{
			name: "deadline too short for the threshold",
			src:  head + hostsLine + releaseLine + "health: {command: \"true\", interval: 1s, deadline: 2s, healthy_threshold: 5}\n",
			want: "plan.yaml:5:51: health.deadline: 2s cannot fit 5 consecutive passes every 1s (needs at least 4s)",
		},
		{
			name: "check timeout longer than the deadline",
			src:  head + hostsLine + releaseLine + "health: {command: \"true\", timeout: 90s}\n",
			want: "plan.yaml:5:36: health.timeout: must not exceed health.deadline (60s), got 90s",
		},
		{
			name: "timeout 0",
			src:  head + hostsLine + releaseLine + "health: {command: \"true\", timeout: 0s}\n",
			want: `plan.yaml:5:36: health.timeout: must be greater than 0, got "0s"`,
		},
		{
			name: "healthy_threshold 0",
			src:  head + hostsLine + releaseLine + "health: {command: \"true\", healthy_threshold: 0}\n",
			want: "plan.yaml:5:46: health.healthy_threshold: must be at least 1, got 0",
		},
		{
			name: "health url that is not a template",
			src:  head + hostsLine + releaseLine + "health: {http: {url: \"http://{{.Host}:8080/\"}}\n",
			want: `plan.yaml:5:22: health.http.url: not a valid template: 1: bad character U+007D '}'`,
		},
		{
			name: "health url with an unknown field",
			src:  head + hostsLine + releaseLine + "health: {http: {url: \"http://{{.Hostname}}:8080/\"}}\n",
			want: `plan.yaml:5:22: health.http.url: unknown field .Hostname; use {{.Host}}, {{.Name}} or {{.Version}}`,
		},
		{
			name: "health url that is not http",
			src:  head + hostsLine + releaseLine + "health: {http: {url: \"ftp://{{.Host}}/x\"}}\n",
			want: `plan.yaml:5:22: health.http.url: must be an http:// or https:// URL, got "ftp://10.0.0.1/x" for host web1`,
		},
		{
			name: "health url that checks no host in particular",
			src: head + "hosts: [{name: web1, address: 10.0.0.1}, {name: web2, address: 10.0.0.2}]\n" +
				"release: {artifact: app.tar.gz, path: /srv/app, restart: /bin/true}\nhealth: {http: {url: \"http://lb.example.com/health\"}}\n",
			want: `plan.yaml:5:22: health.http.url: renders to the same URL for every host (http://lb.example.com/health); use {{.Host}} or {{.Name}} so that each host is checked itself`,
		},
		{
			name: "health status out of range",
			src:  head + hostsLine + releaseLine + "health: {http: {url: \"http://{{.Host}}/\", status: 42}}\n",
			want: "plan.yaml:5:51: health.http.status: must be between 100 and 599, got 42",
		},
		{
			name: "tcp port 0",
			src:  head + hostsLine + releaseLine + "health: {tcp: {port: 0}}\n",
			want: "plan.yaml:5:22: health.tcp.port: must be between 1 and 65535, got 0",
		},
		{
			name: "rollback.automatic as yes",
			src:  base + "rollback: {automatic: yes}\n",
			want: `plan.yaml:6:23: rollback.automatic: must be true or false, got "yes"`,
		},
		{
			name: "hook that is not a list",
			src:  base + "hooks:\n  after_enable: echo done\n",
			want: `plan.yaml:7:17: hooks.after_enable: must be a list of shell commands, got "echo done"`,
		},
		{
			name: "empty hook command",
			src:  base + "hooks:\n  after_enable: [\"echo done\", \"\"]\n",
			want: "plan.yaml:7:31: hooks.after_enable[1]: must not be empty",
		},
		{
			name: "duplicate key",
			src:  base + "name: api\n",
			want: "plan.yaml:6:1: name: duplicate key (first set at line 1)",
		},
		{
			name: "hosts and inventory both",
			src:  base + "inventory: hosts.yaml\n",
			want: "plan.yaml:6:1: inventory: set either hosts or inventory, not both",
		},
		{
			name: "inventory that does not exist",
			src:  head + "inventory: nope.yaml\n" + tail,
			want: "plan.yaml:3:12: inventory: file $DIR/nope.yaml does not exist",
		},
		{
			name: "problems inside the inventory point at the inventory",
			files: map[string]string{"inv/hosts.yaml": `- name: web1
  address: 10.0.0.1
- name: web2
  address: 10.0.0.1
  colour: red
`},
			src: head + "inventory: inv/hosts.yaml\n" + tail,
			want: lines(
				"inv/hosts.yaml:4:12: hosts[1].address: duplicate address 10.0.0.1:22 (also hosts[0], line 2)",
				"inv/hosts.yaml:5:3: hosts[1].colour: unknown key; expected one of name, address, lb_server, transport",
			),
		},
		{
			name:  "YAML syntax error in the inventory",
			files: map[string]string{"hosts.yaml": "- {name: web1, address: 10.0.0.1\n"},
			src:   head + "inventory: hosts.yaml\n" + tail,
			want:  "hosts.yaml:1:3: invalid YAML: could not find flow mapping end token '}'",
		},
		{
			name:  "empty inventory",
			files: map[string]string{"hosts.yaml": "# to do\n"},
			src:   head + "inventory: hosts.yaml\n" + tail,
			want:  "hosts.yaml:1:1: hosts: must list at least one host, got an empty file",
		},
		{
			name: "a bad host address does not also fail the health URL",
			src: head + "hosts: [{name: web1, address: \"10.0.0.1:\"}]\n" + releaseLine +
				"health: {http: {url: \"http://{{.Host}}:8080/\"}}\n",
			want: `plan.yaml:3:31: hosts[0].address: port must be a number between 1 and 65535, got "10.0.0.1:"`,
		},
		{
			name: "YAML syntax error",
			src:  "name: web\nversion: \"1.0\n",
			want: "plan.yaml:2:10: invalid YAML: could not find end character of double-quoted text",
		},
		{
			name: "empty plan",
			src:  "# nothing yet\n",
			want: "plan.yaml:1:1: plan is empty; expected a mapping with name, version, hosts, release and health",
		},
		{
			name: "plan that is a list",
			src:  "- name: web\n",
			want: "plan.yaml:1:1: plan must be a mapping (name, version, hosts, release, health, ...), got a list",
		},
		{
			name: "two YAML documents",
			src:  base + "---\nname: api\n",
			want: "plan.yaml:7:1: plan must be a single YAML document; a second one starts here",
		},
		{
			name: "unsupported tag",
			src:  "name: !secret web\n" + base[len("name: web\n"):],
			want: "plan.yaml:1:7: name: unsupported YAML tag !secret",
		},
		{
			name: "unknown alias",
			src:  base + "hooks: {after_enable: *cmds}\n",
			want: "plan.yaml:6:23: hooks.after_enable: unknown alias *cmds",
		},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.files)
			p, err := f.parse(tc.src)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want:\n%s", p, tc.want)
			}
			if p != nil {
				t.Errorf("Parse returned a plan with an error")
			}
			if got := f.problems(t, err); got != tc.want {
				t.Errorf("problems:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
