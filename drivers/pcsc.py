"""One PC/SC reader by name, through pyscard's low-level `smartcard.scard` API.

pyscard's high-level classes raise one exception type for most failures and their monitor
threads die quietly when pcscd restarts; here every failure becomes a `PcscError`
subclass chosen by its hresult, and the context is re-created after a pcscd restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from smartcard import scard

T = TypeVar("T")

# Symbolic names of the hresults the driver tells apart, for messages and logs.
_NAMES: dict[int, str] = {
    scard.SCARD_E_CANCELLED: "SCARD_E_CANCELLED",
    scard.SCARD_E_INVALID_HANDLE: "SCARD_E_INVALID_HANDLE",
    scard.SCARD_E_UNKNOWN_READER: "SCARD_E_UNKNOWN_READER",
    scard.SCARD_E_TIMEOUT: "SCARD_E_TIMEOUT",
    scard.SCARD_E_SHARING_VIOLATION: "SCARD_E_SHARING_VIOLATION",
    scard.SCARD_E_NO_SMARTCARD: "SCARD_E_NO_SMARTCARD",
    scard.SCARD_E_PROTO_MISMATCH: "SCARD_E_PROTO_MISMATCH",
    scard.SCARD_F_COMM_ERROR: "SCARD_F_COMM_ERROR",
    scard.SCARD_E_NOT_TRANSACTED: "SCARD_E_NOT_TRANSACTED",
    scard.SCARD_E_READER_UNAVAILABLE: "SCARD_E_READER_UNAVAILABLE",
    scard.SCARD_E_NO_SERVICE: "SCARD_E_NO_SERVICE",
    scard.SCARD_E_SERVICE_STOPPED: "SCARD_E_SERVICE_STOPPED",
    scard.SCARD_E_NO_READERS_AVAILABLE: "SCARD_E_NO_READERS_AVAILABLE",
    scard.SCARD_W_UNSUPPORTED_CARD: "SCARD_W_UNSUPPORTED_CARD",
    scard.SCARD_W_UNRESPONSIVE_CARD: "SCARD_W_UNRESPONSIVE_CARD",
    scard.SCARD_W_UNPOWERED_CARD: "SCARD_W_UNPOWERED_CARD",
    scard.SCARD_W_RESET_CARD: "SCARD_W_RESET_CARD",
    scard.SCARD_W_REMOVED_CARD: "SCARD_W_REMOVED_CARD",
}

# A transmit that fails with one of these may mean either "card gone" or "card silent":
# the driver asks the reader which it was.
_TRANSMIT_AMBIGUOUS = {scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_F_COMM_ERROR}

# How long pcscd may take to notice that a card left (its polling interval for vpcd is ~0.4 s).
_REMOVAL_NOTICE_S = 1.0

# Failures that are the reader's or pcscd's, never the card's, however long they took.
_READER_OR_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_UNKNOWN_READER,
    scard.SCARD_E_NO_READERS_AVAILABLE,
}

# A transmit that fails after taking longer than this was a card that stopped answering,
# however the failure was reported in the end: pcsc-lite has no transmit timeout, and vpcd
# waits for ever, so a silent card ends only when the reader (or the printer) gives up.
DEFAULT_APDU_TIMEOUT_S = 2.0

# pcsc-lite's SCardStatus state bit "card present" (pcsclite.h); pyscard does not export it.
_SCARD_PRESENT = 0x0004


class PcscError(Exception):
    """A PC/SC failure. `hresult` is pcsc-lite's code; the subclass says what it means."""

    remedy = "check the reader and the card"

    def __init__(self, message: str, hresult: int) -> None:
        super().__init__(message)
        self.message = message
        self.hresult = hresult

    @property
    def code_name(self) -> str:
        """The symbolic name of the hresult, e.g. SCARD_W_REMOVED_CARD."""
        return _NAMES.get(self.hresult, f"0x{self.hresult & 0xFFFFFFFF:08X}")


class CardNotPresent(PcscError):
    """No card on the reader (none arrived in time, or none when connecting)."""

    remedy = "check that the printer moved the card to the encoder station"


class CardRemoved(PcscError):
    """The card left the reader during the session."""

    remedy = "the card moved away from the encoder station; retry on a new blank"


class CardMute(PcscError):
    """A card is present but does not answer (no ATR, no response, protocol failure)."""

    remedy = "the chip does not answer: reject the card"


class CardTooSlow(PcscError):
    """The card answers, but the work on it ran past the time budget of the session."""

    remedy = "the chip answers too slowly: reject the card; if every card is slow, check the reader"


class ReaderBusy(PcscError):
    """Another application holds the card exclusively."""

    remedy = "stop the other program that uses this reader"


class ReaderUnavailable(PcscError):
    """The reader is not listed by pcscd (unplugged, or a wrong name in the configuration)."""

    remedy = "check the reader's USB cable and its name in the configuration"


class PcscServiceUnavailable(PcscError):
    """pcscd is not running or does not answer."""

    remedy = "start pcscd (systemctl start pcscd.socket)"


_CLASSES: dict[int, type[PcscError]] = {
    scard.SCARD_E_TIMEOUT: CardNotPresent,
    scard.SCARD_E_NO_SMARTCARD: CardNotPresent,
    scard.SCARD_W_REMOVED_CARD: CardRemoved,
    scard.SCARD_W_UNRESPONSIVE_CARD: CardMute,
    scard.SCARD_W_UNPOWERED_CARD: CardMute,
    scard.SCARD_W_UNSUPPORTED_CARD: CardMute,
    scard.SCARD_W_RESET_CARD: CardMute,
    scard.SCARD_E_PROTO_MISMATCH: CardMute,
    scard.SCARD_E_NOT_TRANSACTED: CardMute,
    scard.SCARD_E_SHARING_VIOLATION: ReaderBusy,
    scard.SCARD_E_UNKNOWN_READER: ReaderUnavailable,
    scard.SCARD_E_READER_UNAVAILABLE: ReaderUnavailable,
    scard.SCARD_E_NO_READERS_AVAILABLE: ReaderUnavailable,
    scard.SCARD_E_NO_SERVICE: PcscServiceUnavailable,
    scard.SCARD_E_SERVICE_STOPPED: PcscServiceUnavailable,
    scard.SCARD_F_COMM_ERROR: PcscServiceUnavailable,
    scard.SCARD_E_INVALID_HANDLE: PcscServiceUnavailable,  # a context from before a pcscd restart
}


def pcsc_error(action: str, reader: str, hresult: int) -> PcscError:
    """The PcscError subclass for `hresult`, with a message naming the action and the reader."""
    cls = _CLASSES.get(hresult, PcscError)
    name = _NAMES.get(hresult, f"0x{hresult & 0xFFFFFFFF:08X}")
    detail = scard.SCardGetErrorMessage(hresult)
    return cls(f"{action} on reader '{reader}' failed: {detail} ({name})", hresult)


class CardSession:
    """A connection to the card on one reader. Use as a context manager; closing powers the card down."""

    def __init__(self, reader: str, context: int, handle: int, protocol: int, *,
                 apdu_timeout_s: float = DEFAULT_APDU_TIMEOUT_S, budget_s: float | None = None) -> None:
        self.reader = reader
        self.protocol = protocol
        self.apdu_timeout_s = apdu_timeout_s
        self.budget_s = budget_s
        self._deadline = None if budget_s is None else time.monotonic() + budget_s
        self._context = context
        self._handle: int | None = handle

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return (response data, SW1SW2 as an int).

        Raises CardTooSlow once the session's budget is spent (checked before sending),
        CardMute when the card stops answering (a failure after more than apdu_timeout_s),
        CardRemoved, ReaderUnavailable, PcscServiceUnavailable or PcscError.
        """
        if self._handle is None:
            raise PcscError(f"session on reader '{self.reader}' is closed", scard.SCARD_E_INVALID_HANDLE)
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise CardTooSlow(f"the card on reader '{self.reader}' did not finish within {self.budget_s:.1f} s",
                              scard.SCARD_E_TIMEOUT)
        started = time.monotonic()
        hresult, response = scard.SCardTransmit(self._handle, self.protocol, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            self._raise_if_silent(started, hresult)
            if hresult in _TRANSMIT_AMBIGUOUS and self._card_left():
                hresult = scard.SCARD_W_REMOVED_CARD
            raise pcsc_error("transmit", self.reader, hresult)
        if len(response) < 2:
            self._raise_if_silent(started, hresult)
            # vpcd reports a card that vanished mid-command as an empty answer.
            if self._card_left():
                raise pcsc_error("transmit", self.reader, scard.SCARD_W_REMOVED_CARD)
            raise CardMute(f"card on reader '{self.reader}' answered {len(response)} bytes, no status word", hresult)
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def close(self) -> None:
        """Disconnect and power the card down. A card or service already gone is not an error."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        hresult = scard.SCardDisconnect(handle, scard.SCARD_UNPOWER_CARD)
        if hresult not in (
            scard.SCARD_S_SUCCESS,
            scard.SCARD_W_REMOVED_CARD,
            scard.SCARD_E_NO_SMARTCARD,
            scard.SCARD_E_INVALID_HANDLE,
            scard.SCARD_E_NO_SERVICE,
            scard.SCARD_E_READER_UNAVAILABLE,
        ):
            raise pcsc_error("disconnect", self.reader, hresult)

    def __enter__(self) -> "CardSession":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except PcscError:
            if exc is None:
                raise  # otherwise the first failure is the one worth reporting

    def _raise_if_silent(self, started: float, hresult: int) -> None:
        waited = time.monotonic() - started
        if waited > self.apdu_timeout_s and hresult not in _READER_OR_SERVICE_GONE:
            raise CardMute(f"card on reader '{self.reader}' gave no answer for {waited:.1f} s "
                           f"(more than {self.apdu_timeout_s:.1f} s)", hresult)

    def _card_left(self) -> bool:
        # pcscd notices a removal at its next poll of the reader, so a transmit cut short by
        # the removal can fail before pcscd knows. Wait for at most one poll to tell
        # "card removed" from "card mute".
        assert self._handle is not None
        hresult, _reader, state, _protocol, _atr = scard.SCardStatus(self._handle)
        if hresult in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD):
            return True
        if hresult == scard.SCARD_S_SUCCESS and not state & _SCARD_PRESENT:
            return True
        deadline = time.monotonic() + _REMOVAL_NOTICE_S
        known = scard.SCARD_STATE_UNAWARE
        while (remaining := deadline - time.monotonic()) > 0:
            hresult, states = scard.SCardGetStatusChange(self._context, int(remaining * 1000), [(self.reader, known)])
            if hresult != scard.SCARD_S_SUCCESS:
                return False
            event_state = states[0][1]
            if event_state & scard.SCARD_STATE_EMPTY:
                return True
            known = event_state & ~scard.SCARD_STATE_CHANGED
        return False


class PcscReader:
    """A PC/SC reader by its name as pcscd lists it, e.g. 'Virtual PCD 00 00'.

    One reader object per thread: pcsc-lite contexts are not meant to be shared.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._context: int | None = None
        self._lock = threading.Lock()  # guards the context handle against cancel()

    def wait_for_card(self, timeout: float) -> None:
        """Block until a card is on the reader, at most `timeout` seconds.

        Raises CardNotPresent on timeout, ReaderUnavailable if pcscd does not list the
        reader, PcscServiceUnavailable if pcscd is down.
        """
        deadline = time.monotonic() + timeout
        self._with_context(lambda context: self._wait(context, deadline, timeout))

    def check(self) -> None:
        """Raise ReaderUnavailable or PcscServiceUnavailable unless pcscd lists this reader."""
        self._with_context(self._require_listed)

    def connect(self, exclusive: bool = True, *, budget_s: float | None = None,
                apdu_timeout_s: float = DEFAULT_APDU_TIMEOUT_S) -> CardSession:
        """Connect to the card (T=0 or T=1). Use the result as a context manager.

        `budget_s` bounds the whole session (its transmits then raise CardTooSlow), and a
        transmit failing after more than `apdu_timeout_s` is CardMute (see CardSession.transmit).
        Raises CardNotPresent, CardMute, ReaderBusy, ReaderUnavailable, PcscServiceUnavailable.
        """
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED

        def connect(context: int) -> CardSession:
            hresult, handle, protocol = scard.SCardConnect(
                context, self.name, share, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
            if hresult != scard.SCARD_S_SUCCESS:
                raise self._fail("connect", hresult)
            return CardSession(self.name, context, handle, protocol, apdu_timeout_s=apdu_timeout_s, budget_s=budget_s)

        return self._with_context(connect)

    def cancel(self) -> None:
        """Wake a `wait_for_card` blocked in another thread (it then raises PcscError, cancelled)."""
        with self._lock:
            if self._context is not None:
                scard.SCardCancel(self._context)

    def close(self) -> None:
        """Release the PC/SC context. The reader can be used again; a new context is made then."""
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            scard.SCardReleaseContext(context)

    def _with_context(self, operation: Callable[[int], T]) -> T:
        # A context made before a pcscd restart fails once with a service error; then a
        # new context is made and the operation tried once more.
        had_context = self._context is not None
        try:
            return operation(self._ensure_context())
        except PcscServiceUnavailable:
            if not had_context:
                raise
            return operation(self._ensure_context())

    def _wait(self, context: int, deadline: float, timeout: float) -> None:
        self._require_listed(context)
        state = scard.SCARD_STATE_UNAWARE
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(context, remaining_ms, [(self.name, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                raise CardNotPresent(f"no card on reader '{self.name}' after {timeout:.1f} s", hresult)
            if hresult != scard.SCARD_S_SUCCESS:
                raise self._fail("waiting for a card", hresult)
            _name, event_state, _atr = states[0]
            if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE):
                raise ReaderUnavailable(f"reader '{self.name}' is gone", scard.SCARD_E_READER_UNAVAILABLE)
            if event_state & scard.SCARD_STATE_PRESENT:
                return
            state = event_state & ~scard.SCARD_STATE_CHANGED
            if time.monotonic() >= deadline:
                raise CardNotPresent(f"no card on reader '{self.name}' after {timeout:.1f} s", scard.SCARD_E_TIMEOUT)

    def _ensure_context(self) -> int:
        with self._lock:
            if self._context is not None:
                return self._context
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != scard.SCARD_S_SUCCESS:
                raise pcsc_error("connecting to pcscd", self.name, hresult)
            self._context = context
            return context

    def _require_listed(self, context: int) -> None:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE or (hresult == scard.SCARD_S_SUCCESS and self.name not in names):
            listed = ", ".join(names) if hresult == scard.SCARD_S_SUCCESS else "none"
            raise ReaderUnavailable(f"reader '{self.name}' is not listed by pcscd (listed: {listed})", scard.SCARD_E_UNKNOWN_READER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._fail("listing readers", hresult)

    def _fail(self, action: str, hresult: int) -> PcscError:
        error = pcsc_error(action, self.name, hresult)
        if isinstance(error, PcscServiceUnavailable):
            # pcscd restarted or stopped: this context is dead; the next call makes a new one.
            self.close()
        return error
