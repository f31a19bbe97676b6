package s3store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Config is how to reach an S3-compatible store. Its String and GoString
// never show the secret key or the session token, so that a Config can be
// printed and logged.
type Config struct {
	// Endpoint is the store's URL, http:// or https://, host and port
	// only; empty means AWS S3. A custom endpoint is addressed path-style
	// (http://host/bucket/key), which every S3-compatible server accepts.
	Endpoint string
	// Region signs the requests; default us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey sign the requests, with
	// SessionToken for temporary credentials. Without an access key, the
	// shared credentials file (~/.aws/credentials, AWS_PROFILE) is read,
	// and failing that requests go unsigned.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// ConfigFromEnv reads a Config from the usual AWS environment variables
// through getenv (os.Getenv in a program): AWS_ENDPOINT_URL_S3 or else
// AWS_ENDPOINT_URL, AWS_REGION or else AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
func ConfigFromEnv(getenv func(string) string) Config {
	first := func(names ...string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return ""
	}
	return Config{
		Endpoint:        first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
		Region:          first("AWS_REGION", "AWS_DEFAULT_REGION"),
		AccessKeyID:     first("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    getenv("AWS_SESSION_TOKEN"),
	}
}

// String describes the configuration without its secrets.
func (c Config) String() string {
	ep := "AWS S3"
	if c.Endpoint != "" {
		ep = redactURL(c.Endpoint)
	}
	key := "no access key"
	if c.AccessKeyID != "" {
		key = "access key " + c.AccessKeyID
	}
	return fmt.Sprintf("%s, region %s, %s", ep, c.region(), key)
}

// GoString is String, so that %#v shows no secret either.
func (c Config) GoString() string { return "s3store.Config{" + c.String() + "}" }

func (c Config) region() string {
	if c.Region == "" {
		return "us-east-1"
	}
	return c.Region
}

// endpoint is where requests go: host[:port], whether over TLS, and
// whether the endpoint is a custom one (path-style addressing).
func (c Config) endpoint() (host string, secure, custom bool, err error) {
	if c.Endpoint == "" {
		return "s3.amazonaws.com", true, false, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" {
		// url's errors quote the whole URL: say nothing of it.
		return "", false, false, fmt.Errorf("the S3 endpoint %s is not a URL like http://host:port", redactURL(c.Endpoint))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, false, fmt.Errorf("the S3 endpoint %s must start with http:// or https://", redactURL(c.Endpoint))
	case u.User != nil:
		return "", false, false, errors.New("the S3 endpoint must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		return "", false, false, fmt.Errorf("the S3 endpoint %s must be a scheme, a host and a port, without a path", redactURL(c.Endpoint))
	}
	return u.Host, u.Scheme == "https", true, nil
}

// redactURL is a URL without its user information, query and fragment,
// or a placeholder when it does not parse: fit for an error message.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
