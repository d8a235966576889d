package main

import (
	"path/filepath"
	"strings"
)

// helperNames are the names under which mount(8) runs this program for an /etc/fstab line or
// `mount -t`: type mount-s3 (Mountpoint's fstab form) and fuse.mount-s3. `make install`
// links both into /sbin.
var helperNames = map[string]bool{"mount.mount-s3": true, "mount.fuse.mount-s3": true, "mount.fuse3.mount-s3": true}

// helperArgs translates mount(8)'s helper call, `SPEC DIR [-sfnv] [-N NS] [-t TYPE] [-o OPTS]`,
// into this program's command line: SPEC is the bucket (a name or s3://bucket/prefix/), the
// options are the fstab form. fake reports -f: mount(8) asks for everything but the mount.
func helperArgs(args []string) (out []string, fake bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 < len(args) {
				if a == "-o" {
					out = append(out, "-o", args[i+1])
				}
				i++
			}
		case strings.HasPrefix(a, "-o"):
			out = append(out, a)
		case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "sfnvr") == "":
			fake = fake || strings.Contains(a, "f")
			if strings.Contains(a, "r") {
				out = append(out, "--read-only")
			}
		default:
			out = append(out, a)
		}
	}
	return out, fake
}

// isHelper reports whether this program was run by mount(8) as a mount helper.
func isHelper(argv0 string) bool { return helperNames[filepath.Base(argv0)] }
