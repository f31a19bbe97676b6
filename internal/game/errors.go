package game

import "errors"

// Rejection is a request the game refused. Reason is the machine-readable
// `error` field of the failed event; Message is for humans.
type Rejection struct {
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

// Is matches rejections by reason, so errors.Is(err, ErrUnknownItem) holds
// for a rejection with a more specific message.
func (r *Rejection) Is(target error) bool {
	t, ok := target.(*Rejection)
	return ok && t.Reason == r.Reason
}

func reject(reason, message string) *Rejection { return &Rejection{Reason: reason, Message: message} }

// The game's rejections. Each becomes a failed event with its reason.
var (
	ErrUnauthenticated  = reject("unauthenticated", "log in first: no valid session")
	ErrBadRequest       = reject("bad_request", "the request could not be read")
	ErrInvalidUsername  = reject("invalid_username", "a username is 1 to 32 letters, digits, '_', '-' or '.'")
	ErrInvalidPassword  = reject("invalid_password", "a password is 1 to 72 bytes of UTF-8 text")
	ErrInvalidGuild     = reject("invalid_guild", "a guild name is 1 to 32 letters, digits, '_', '-' or '.'")
	ErrInvalidQuantity  = reject("invalid_quantity", "quantity must be a whole number from 1 to 1000")
	ErrUnknownItem      = reject("unknown_item", "no such item type in the catalog")
	ErrUnknownQuality   = reject("unknown_quality", "no such quality in the catalog")
	ErrAlreadyExists    = reject("already_exists", "that username is taken")
	ErrUnknownUser      = reject("unknown_user", "no player with that username")
	ErrBadPassword      = reject("bad_password", "wrong password")
	ErrInsufficientGold = reject("insufficient_gold", "not enough gold")
	ErrInsufficientItem = reject("insufficient_items", "you do not have that many of that item")
	ErrNotInCart        = reject("not_in_cart", "that item is not in your cart")
	ErrCartFull         = reject("cart_full", "the cart holds at most 50 lines and 1000 of one item")
	ErrEmptyCart        = reject("empty_cart", "the cart is empty")
	ErrAlreadyInGuild   = reject("already_in_guild", "leave your guild before joining another")
	ErrNotInGuild       = reject("not_in_guild", "you are in no guild")
	ErrInvalidItem      = reject("invalid_item", "name an item type from the catalog")
	ErrRateLimited      = reject("rate_limited", "too many failed logins; wait before trying again")
	ErrMethodNotAllowed = reject("method_not_allowed", "this route does not take that method")
)

// Refusals for the server's own state rather than the request's: the
// request changed nothing and may be retried (HTTP 503 with Retry-After,
// except ErrClientGone, whose client is no longer there to answer).
var (
	// ErrStoreUnavailable: the state store did not answer in time.
	ErrStoreUnavailable = reject("store_unavailable", "the state store is unreachable; nothing was changed, try again")
	// ErrPlayerBusy: the player's previous action did not finish (or is
	// not yet confirmed by the event log) within the request's time.
	ErrPlayerBusy = reject("player_busy", "your previous action is still being confirmed; try again")
	// ErrClientGone: the client hung up before the action's event was
	// recorded, so the action was not carried out.
	ErrClientGone = reject("client_closed", "the client closed the request before it was carried out")
)

// ErrLogUnavailable means the event could not be recorded, so nothing was
// changed and the request must be refused (HTTP 503).
var ErrLogUnavailable = errors.New("event log unavailable: nothing was changed")
