//go:build linux

package monitor

import "testing"

func TestProbe(t *testing.T) {
	requireRoot(t)
	c := Probe()
	for _, name := range []string{"btf", "program-set", "cgroup-sock-addr", "fanotify-perm"} {
		ch, ok := c.Check(name)
		if !ok || !ch.OK {
			t.Errorf("check %s: %+v (this machine kind has it)", name, ch)
		}
	}
	if len(c.Guards) < 5 {
		t.Errorf("guards: %+v", c.Guards)
	}
	for _, ch := range c.Checks {
		t.Logf("%-18s ok=%-5v %s", ch.Name, ch.OK, ch.Detail)
	}
}
