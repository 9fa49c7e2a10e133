//go:build linux

package integration

// Security review (review_*): exec appraisal under strict with a verified
// image ("only files whose sha256 is an executable of the signed image may
// exec"). Each test asserts the SECURE behaviour; "FAILS NOW (bypass)" marks
// a test that fails against the current code because of a real bypass.
//
// Status: every test failed against 7c9a890 because of a real bypass; all
// pass since the fixes that followed the review (mount-type allow-list,
// resolved and re-verified bind sources, ro/rw normalisation, noexec on
// every mount but the rootfs, rprivate propagation, hooked task Update,
// the gate's stricter overlay options). docs/threat-model.md lists them.

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

// zzImportSigned imports a signed busybox image with extra files under the
// test policy and returns its chain id.
func zzImportSigned(t *testing.T, e *env, ref string, files ...testimage.File) string {
	t.Helper()
	path := makeBundle(t, bundleOpts{ref: ref, marker: ref, sign: true, files: files})
	res, err := plugin.Import(e.ctx, e.c, path, testKeys(t).policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	return res.ChainID.Encoded()
}

// zzRun runs args in a container of ref; a refusal at Create (the secure
// outcome for most attacks here) is returned as the output's text.
func zzRun(t *testing.T, rt runtimeCase, ref string, args []string, opts ...oci.SpecOpts) (string, string) {
	t.Helper()
	env := newEnv(t, shared, rt)
	ctr := env.imageContainer(ref, uniqueID(t), args, opts...)
	out := &output{}
	task, err := ctr.NewTask(env.ctx, env.ioCreator(out))
	if err != nil {
		return ctr.ID(), "create refused: " + err.Error()
	}
	env.complete(task)
	return ctr.ID(), out.stdout.String() + out.stderr.String()
}

// TestReviewAppraisalLoaderFromReadOnlyVolume: appraisal judges execve
// (FAN_OPEN_EXEC_PERM); a loader maps a program with open+mmap, which no
// exec permission event sees. Row 9 closes the loader trick with noexec, but
// strict leaves READ-ONLY mounts exec-able, and row 21 relies on appraisal
// for binaries on read-only volumes. The image's own ld.so (an executable of
// the signed image, so appraisal allows it) runs a binary from a read-only
// volume that appraisal denies when exec'd directly.
//
// Was a bypass (review of this session); fixed, see docs/threat-model.md. Fix: monitor/spec.go harden — make every mount but
// the rootfs noexec, read-only ones included (exceptions by path in the
// operator's profile), or hook mmap(PROT_EXEC) (not available on this
// kernel without an LSM).
func TestReviewAppraisalLoaderFromReadOnlyVolume(t *testing.T) {
	ldso, err := os.ReadFile("/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Skip("needs the host's x86-64 glibc loader")
	}
	libc, err1 := os.ReadFile("/lib/x86_64-linux-gnu/libc.so.6")
	echo, err2 := os.ReadFile("/usr/bin/echo")
	if err1 != nil || err2 != nil {
		t.Skip("needs the host's libc and a dynamic /usr/bin/echo")
	}
	e := newEnv(t, shared, strictGateRuntime(t))
	ref := "docker.io/vordr/zz-loader:1"
	zzImportSigned(t, e, ref,
		testimage.File{Path: "/lib64/ld-linux-x86-64.so.2", Mode: 0o755, Content: ldso},
		testimage.File{Path: "/lib/x86_64-linux-gnu/libc.so.6", Mode: 0o644, Content: libc})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog"), echo, 0o755); err != nil {
		t.Fatal(err)
	}
	tools := oci.WithMounts([]specs.Mount{{Type: "bind", Source: dir, Destination: "/tools", Options: []string{"rbind", "ro"}}})
	direct := []string{"/tools/prog", "PWNED-DIRECT"}
	loader := []string{"/lib64/ld-linux-x86-64.so.2", "/tools/prog", "PWNED-LOADER"}

	if _, out := zzRun(t, runcV2, ref, loader, tools); !strings.Contains(out, "PWNED-LOADER") {
		t.Fatalf("control: runc.v2 runs the loader: %q", out)
	}
	// Appraisal works for the direct exec...
	if _, out := zzRun(t, e.rt, ref, direct, tools); strings.Contains(out, "PWNED-DIRECT") {
		t.Fatalf("precondition: appraisal let a non-image binary exec: %q", out)
	}
	// ...and must hold for the same bytes run by the loader.
	if _, out := zzRun(t, e.rt, ref, loader, tools); strings.Contains(out, "PWNED-LOADER") {
		t.Fatalf("BYPASS: strict with appraisal ran bytes that are not in the signed image through the image's ld.so: %q", out)
	}
}

// TestReviewGateCacheWritable: the exec appraisal set, the layer
// manifests and the lower-directory verdicts live in [gate] cache_dir
// (default /var/lib/vordr/gate), which "must be the operator's". Strict's
// bind check does not cover it (nor anything below /var/lib but containerd,
// kubelet and docker). A deployer binds it into one strict container whose
// workload adds a digest to the image's exec set; every later container of
// that image on the node then runs that binary.
//
// Was a bypass (review of this session); fixed, see docs/threat-model.md. Fix: monitor/spec.go — refuse binds of the gate's
// cache_dir, vordr's state and config (/var/lib/vordr, /etc/vordr, the
// events dir) and, generally, anything below a critical path; and
// plugin/rootfs — authenticate cache entries (e.g. an HMAC with a key only
// the shim reads, or re-derive the exec set from the blobs).
func TestReviewGateCacheWritable(t *testing.T) {
	e := newEnv(t, shared, strictGateRuntime(t))
	ref := "docker.io/vordr/zz-cache:1"
	chain := zzImportSigned(t, e, ref)
	cache := filepath.Join(shared.Dir, "gate-cache")
	set := filepath.Join(cache, "exec", chain+".json")
	t.Cleanup(func() { os.Remove(set) })
	tool, err := os.ReadFile(attackBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tool)
	digest := hex.EncodeToString(sum[:])
	tools := toolsDir(t)
	victim := []string{"/tools/tool", "open-write", "/dev/null"}

	if _, out := zzRun(t, e.rt, ref, victim, tools); strings.Contains(out, "OPENED") {
		t.Fatalf("precondition: appraisal let /tools/tool run: %q", out)
	}
	// The attacker's container: the cache bound read-write (noexec is
	// irrelevant, it writes JSON).
	bind := oci.WithMounts([]specs.Mount{{Type: "bind", Source: cache, Destination: "/cache", Options: []string{"rbind", "rw"}}})
	_, out := zzRun(t, e.rt, ref, []string{"sh", "-c", `sed -i 's/]$/,"` + digest + `"]/' /cache/exec/` + chain + `.json && echo POISONED`}, bind)
	t.Logf("attacker container: %q", out)
	if _, out := zzRun(t, e.rt, ref, victim, tools); strings.Contains(out, "OPENED") {
		t.Fatalf("BYPASS: after a strict container wrote the gate cache, appraisal runs a binary that is not in the signed image: %q", out)
	}
}

// zzBuildRacer compiles the race workload (a program of the image, as any
// image may ship) for TestReviewAppraisalHashThenExecRace.
func zzBuildRacer(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module zzrace\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(zzRacerSource), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "zzrace")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build racer: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReviewAppraisalHashThenExecRace: the shim hashes the file from the
// fanotify event's descriptor and answers FAN_ALLOW; the kernel denies
// writers (ETXTBSY) only after that answer, and reads the ELF header after
// that. A writer that rewrites the first page after the hash has read it and
// before the kernel denies writes gets different bytes executed: here a
// 200-byte ELF that prints PWNED written over a copy of the image's busybox.
// The deployer gives the same volume twice, read-write (noexec) at /w and
// read-only (exec-able) at /r (a shared emptyDir mounted read-only is the
// usual shape).
//
// Expected to FAIL NOW (bypass) when the race is won within the attempts.
// Fix: monitor/fanotify_linux.go / appraise_linux.go — this cannot be closed
// by hashing from the event fd; make every non-rootfs mount noexec under
// strict (the exec-able mounts are then read-only everywhere), or refuse
// specs where an exec-able mount's source is also mounted writable.
func TestReviewAppraisalHashThenExecRace(t *testing.T) {
	racer := zzBuildRacer(t)
	e := newEnv(t, shared, strictGateRuntime(t))
	ref := "docker.io/vordr/zz-race:1"
	zzImportSigned(t, e, ref, testimage.File{Path: "/bin/zzrace", Mode: 0o755, Content: racer})
	vol := t.TempDir()
	mounts := oci.WithMounts([]specs.Mount{
		{Type: "bind", Source: vol, Destination: "/w", Options: []string{"rbind", "rw"}},
		{Type: "bind", Source: vol, Destination: "/r", Options: []string{"rbind", "ro"}},
	})
	args := []string{"/bin/zzrace", "/bin/busybox", "/w", "/r", "400"}
	// Control: without the race (plain copy of the payload) appraisal denies.
	if _, out := zzRun(t, e.rt, ref, []string{"/bin/zzrace", "-direct", "/w", "/r"}, mounts); strings.Contains(out, "PWNED") {
		t.Fatalf("precondition: appraisal let the payload exec directly: %q", out)
	}
	id, out := zzRun(t, e.rt, ref, args, mounts)
	t.Logf("%s: %s", id, out)
	if strings.Contains(out, "RACED") {
		t.Fatalf("BYPASS: bytes that are not an executable of the signed image ran under appraisal (won the hash-then-exec race): %q", lastLines(out, 5))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

const zzRacerSource = `package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// payload is a static x86-64 ELF: write(1, "PWNED\n", 6); exit(0).
func payload() []byte {
	code := []byte{
		0xb8, 1, 0, 0, 0, // mov eax, 1
		0xbf, 1, 0, 0, 0, // mov edi, 1
		0x48, 0x8d, 0x35, 16, 0, 0, 0, // lea rsi, [rip+16]
		0xba, 6, 0, 0, 0, // mov edx, 6
		0x0f, 0x05, // syscall
		0xb8, 60, 0, 0, 0, // mov eax, 60
		0x31, 0xff, // xor edi, edi
		0x0f, 0x05, // syscall
	}
	code = append(code, "PWNED\n"...)
	const base = 0x400000
	var b bytes.Buffer
	le := binary.LittleEndian
	total := uint64(64 + 56 + len(code))
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))    // ET_EXEC
	binary.Write(&b, le, uint16(0x3e)) // x86-64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(base+64+56)) // entry
	binary.Write(&b, le, uint64(64))         // phoff
	binary.Write(&b, le, uint64(0))          // shoff
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(64))
	binary.Write(&b, le, uint16(56))
	binary.Write(&b, le, uint16(1))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint32(1)) // PT_LOAD
	binary.Write(&b, le, uint32(5)) // R+X
	binary.Write(&b, le, uint64(0))
	binary.Write(&b, le, uint64(base))
	binary.Write(&b, le, uint64(base))
	binary.Write(&b, le, total)
	binary.Write(&b, le, total)
	binary.Write(&b, le, uint64(0x1000))
	b.Write(code)
	return b.Bytes()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func main() {
	p := payload()
	if len(os.Args) == 4 && os.Args[1] == "-direct" {
		w, r := os.Args[2], os.Args[3]
		os.WriteFile(w+"/direct", p, 0o755)
		out, err := exec.Command(r + "/direct").CombinedOutput()
		fmt.Printf("direct: %q %v\n", out, err)
		return
	}
	src, w, r := os.Args[1], os.Args[2], os.Args[3]
	n, _ := strconv.Atoi(os.Args[4])
	stats := map[string]int{}
	for i := 0; i < n; i++ {
		// Delays sweep 0..3 ms in 25 us steps.
		delay := time.Duration(i%120) * 25 * time.Microsecond
		name := "x" + strconv.Itoa(i)
		if err := copyFile(src, w+"/"+name); err != nil {
			fmt.Println("copy:", err)
			os.Exit(1)
		}
		cmd := exec.Command(r+"/"+name)
		cmd.Args = []string{"true"}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// The writer runs concurrently with the exec: Start returns only
		// once the exec is done.
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			for time.Since(start) < delay {
			}
			f, err := os.OpenFile(w+"/"+name, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt(p, 0)
				f.Close()
			}
			done <- err
		}()
		if err := cmd.Start(); err != nil {
			<-done
			stats["denied-or-failed"]++
			os.Remove(w + "/" + name)
			continue
		}
		if err := <-done; err != nil {
			if e, ok := err.(*os.PathError); ok && e.Err == syscall.ETXTBSY {
				stats["txtbsy"]++
			} else {
				stats["write:"+err.Error()]++
			}
		}
		werr := cmd.Wait()
		switch {
		case bytes.Contains(out.Bytes(), []byte("PWNED")):
			fmt.Printf("RACED at attempt %d delay %s: %q\n", i, delay, out.String())
			fmt.Println(stats)
			os.Exit(0)
		case werr != nil:
			stats["exit:"+werr.Error()]++
		default:
			stats["ran-genuine"]++
		}
		os.Remove(w + "/" + name)
	}
	fmt.Println("lost", stats)
}
`

// zzExec runs args in a running task; err is Start's (a denied exec).
func (e *env) zzExec(ctr containerd.Container, task containerd.Task, args ...string) (string, error) {
	e.t.Helper()
	spec, err := ctr.Spec(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	out := &output{}
	proc, err := task.Exec(e.ctx, "x"+strings.ReplaceAll(uniqueID(e.t), "-", "")[:20], &p, e.ioCreator(out))
	if err != nil {
		return "", err
	}
	defer proc.Delete(e.ctx)
	ch, err := proc.Wait(e.ctx)
	if err != nil {
		return "", err
	}
	if err := proc.Start(e.ctx); err != nil {
		return "", err
	}
	<-ch
	proc.IO().Wait()
	return out.stdout.String() + out.stderr.String(), nil
}

// TestReviewAppraisalPropagatedMount: exec marks are placed once, at
// attach, on the mounts the container has then. A mount that appears later
// by propagation (a host bind with rslave — e.g. a hostPath under which the
// kubelet, an automounter or another pod's memory-backed emptyDir mounts
// later) carries no mark and no noexec: its binaries are never appraised
// (under appraisal the BPF SIGKILL fallback is off). Here the test mounts a
// tmpfs under the bound host directory after start, as the host would.
//
// Was a bypass (review of this session); fixed, see docs/threat-model.md. Fix: monitor/spec.go harden — force "rprivate" on
// every mount (strip shared/slave propagation) and refuse
// linux.rootfsPropagation other than private; or keep BPF's kill for
// unmarked mounts (compare the exec's mount id with the marked set).
func TestReviewAppraisalPropagatedMount(t *testing.T) {
	e := newEnv(t, shared, strictGateRuntime(t))
	ref := "docker.io/vordr/zz-propagate:1"
	zzImportSigned(t, e, ref)
	tool, err := os.ReadFile(attackBin)
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	// A shared host directory, as everything is on a systemd host.
	if err := runHost("mount", "--bind", host, host); err != nil {
		t.Skip("bind the host directory:", err)
	}
	t.Cleanup(func() { _ = runHost("umount", "-R", host) })
	if err := runHost("mount", "--make-shared", host); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(host, "tool0"), tool, 0o755)
	os.Mkdir(filepath.Join(host, "sub"), 0o755)
	bind := oci.WithMounts([]specs.Mount{{Type: "bind", Source: host, Destination: "/d", Options: []string{"rbind", "ro", "rslave"}}})

	for _, rt := range []runtimeCase{runcV2, e.rt} {
		t.Run(rt.name, func(t *testing.T) {
			env := newEnv(t, shared, rt)
			ctr := env.imageContainer(ref, uniqueID(t), []string{"sleep", "60"}, bind)
			task, err := ctr.NewTask(env.ctx, env.ioCreator(&output{}))
			if err != nil {
				t.Fatal(err)
			}
			defer task.Delete(env.ctx, containerd.WithProcessKill)
			if err := task.Start(env.ctx); err != nil {
				t.Fatal(err)
			}
			out0, err0 := env.zzExec(ctr, task, "/d/tool0", "open-write", "/dev/null")
			// After start: the host mounts something under the bound directory.
			sub := filepath.Join(host, "sub")
			if err := runHost("mount", "-t", "tmpfs", "zz", sub); err != nil {
				t.Fatal(err)
			}
			defer runHost("umount", sub)
			if err := os.WriteFile(filepath.Join(sub, "tool"), tool, 0o755); err != nil {
				t.Fatal(err)
			}
			out1, err1 := env.zzExec(ctr, task, "/d/sub/tool", "open-write", "/dev/null")
			t.Logf("marked mount: %v %q; propagated mount: %v %q", err0, out0, err1, out1)
			if rt.runtime == runcRuntime {
				if !strings.Contains(out1, "OPENED") {
					t.Fatalf("control: runc.v2 sees the propagated mount and runs its binary: %v %q", err1, out1)
				}
				return
			}
			if strings.Contains(out0, "OPENED") {
				t.Fatalf("precondition: appraisal let a non-image binary on a marked mount run")
			}
			if strings.Contains(out1, "OPENED") {
				t.Fatalf("BYPASS: a binary on a mount propagated in after attach ran unappraised: %q", out1)
			}
		})
	}
}
