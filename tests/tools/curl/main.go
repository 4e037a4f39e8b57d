// curl: stands in for docker.io/curlimages/curl in the charts' init containers, which run
//
//	until curl --max-time 10 URL; do ...                       (rekor, fulcio: wait for a server)
//	until curl --fail --header "Authorization: Bearer T" --cacert CA --max-time 10 URL | grep ...
//	                                                            (ctlog: wait for a ConfigMap key)
//
// Supported: -s/--silent, -S/--show-error, -f/--fail, -L/--location, -k/--insecure, -o/--output
// FILE, -H/--header "Name: value", --cacert FILE, -m/--max-time SEC, --connect-timeout SEC, and
// combined short flags such as -fsSL. The body goes to stdout (or FILE). Exit codes are curl's:
// 0 on any response (22 with --fail and a status >= 400), 28 on a timeout, 7 on a failed
// connection, 2 on a usage error.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	url, output, cacert              string
	fail, silent, location, insecure bool
	maxTime                          float64
	headers                          []string
}

func usage(message string) {
	fmt.Fprintln(os.Stderr, "curl:", message)
	os.Exit(2)
}

func parse(args []string) options {
	var o options
	value := func(i *int) string {
		*i++
		if *i >= len(args) {
			usage("option " + args[*i-1] + " needs a value")
		}
		return args[*i]
	}
	seconds := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			usage("not a number of seconds: " + s)
		}
		return v
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--silent":
			o.silent = true
		case a == "--show-error":
		case a == "--fail":
			o.fail = true
		case a == "--location":
			o.location = true
		case a == "--insecure":
			o.insecure = true
		case a == "-o" || a == "--output":
			o.output = value(&i)
		case a == "-H" || a == "--header":
			o.headers = append(o.headers, value(&i))
		case a == "--cacert":
			o.cacert = value(&i)
		case a == "-m" || a == "--max-time" || a == "--connect-timeout":
			o.maxTime = seconds(value(&i))
		case strings.HasPrefix(a, "--"):
			usage("unsupported option " + a)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, flag := range a[1:] {
				switch flag {
				case 's':
					o.silent = true
				case 'S':
				case 'f':
					o.fail = true
				case 'L':
					o.location = true
				case 'k':
					o.insecure = true
				default:
					usage("unsupported option -" + string(flag))
				}
			}
		default:
			if o.url != "" {
				usage("one URL only")
			}
			o.url = a
		}
	}
	if o.url == "" {
		usage("usage: curl [-sSfLk] [-o FILE] [-H HEADER] [--cacert FILE] [--max-time SEC] URL")
	}
	return o
}

func client(o options) *http.Client {
	config := &tls.Config{InsecureSkipVerify: o.insecure}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			fmt.Fprintln(os.Stderr, "curl: (77)", err)
			os.Exit(77)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "curl: (77) no certificate in", o.cacert)
			os.Exit(77)
		}
	}
	c := &http.Client{
		Timeout:   time.Duration(o.maxTime * float64(time.Second)),
		Transport: &http.Transport{TLSClientConfig: config, Proxy: http.ProxyFromEnvironment},
	}
	if !o.location {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func main() {
	o := parse(os.Args[1:])
	request, err := http.NewRequest(http.MethodGet, o.url, nil)
	if err != nil {
		usage(err.Error())
	}
	for _, header := range o.headers {
		name, value, ok := strings.Cut(header, ":")
		if !ok {
			usage("a header is Name: value, not " + header)
		}
		request.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	response, err := client(o).Do(request)
	if err != nil {
		var timeout interface{ Timeout() bool }
		code := 7
		if errors.As(err, &timeout) && timeout.Timeout() {
			code = 28
		}
		if !o.silent {
			fmt.Fprintf(os.Stderr, "curl: (%d) %v\n", code, err)
		}
		os.Exit(code)
	}
	defer response.Body.Close()
	if o.fail && response.StatusCode >= 400 {
		if !o.silent {
			fmt.Fprintf(os.Stderr, "curl: (22) The requested URL returned error: %d\n", response.StatusCode)
		}
		os.Exit(22)
	}
	out := io.Writer(os.Stdout)
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			fmt.Fprintln(os.Stderr, "curl: (23)", err)
			os.Exit(23)
		}
		defer f.Close()
		out = f
	}
	if _, err := io.Copy(out, response.Body); err != nil {
		fmt.Fprintln(os.Stderr, "curl: (56)", err)
		os.Exit(56)
	}
}
