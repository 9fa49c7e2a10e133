package monitor

// Capabilities is what this kernel offers vordr, found by trial (loading
// programs, opening a fanotify group), not by reading version numbers.
type Capabilities struct {
	Kernel string `json:"kernel"`
	Root   bool   `json:"root"`
	// Checks are the individual probes, in a stable order.
	Checks []Check `json:"checks"`
	// Guards says, per action, which mechanism the guard uses on this
	// kernel, e.g. "exec.drift (strict)" → "deny: fanotify FAN_OPEN_EXEC_PERM".
	Guards []Guarding `json:"guards"`
}

// Check is one probe result.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail is the error or the finding.
	Detail string `json:"detail,omitempty"`
}

// Guarding names the mechanism in force for one action.
type Guarding struct {
	Action    string `json:"action"`
	Mechanism string `json:"mechanism"`
}

// Check returns the named check.
func (c Capabilities) Check(name string) (Check, bool) {
	for _, ch := range c.Checks {
		if ch.Name == name {
			return ch, true
		}
	}
	return Check{}, false
}
