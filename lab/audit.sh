# drover lab: the host audit. Every web host's sshd runs, for every session,
#   ForceCommand audit_log=<lab dir>/audit/<host>.log sftp_server=<sftp-server>; . <lab dir>/audit.sh
# in the login shell (/bin/sh -c), which sources this file. It appends one line
#   <unix nanoseconds> <client IP> <command>
# to $audit_log ("\" and newlines in the command written as \\ and \n), then
# replaces itself with the original command (`exec /bin/sh -c`: exit status,
# stdin, stdout and stderr are the session's own). The SFTP subsystem (sshd
# hands it over as the Subsystem's command line) is logged as "sftp", and each
# operation sftp-server reports (open, close with bytes written, rename,
# remove, setstat, ...) as "sftp <operation>".
#
# Cost per session: one `date` (sh has no clock) and this shell's parsing.
# `printf %s` of one string writes it with one write(2) to a file opened
# O_APPEND, so concurrent sessions never interleave their lines.

_audit_nl='
'

# _audit_sub C R: replace every C in $_audit_s with R.
_audit_sub() {
	_audit_r=
	while :; do
		case $_audit_s in
		*"$1"*) _audit_r=$_audit_r${_audit_s%%"$1"*}$2 _audit_s=${_audit_s#*"$1"} ;;
		*) _audit_s=$_audit_r$_audit_s && return ;;
		esac
	done
}

# _audit TEXT: append one line for TEXT.
_audit() {
	_audit_s=$1
	_audit_sub '\' '\\'
	_audit_sub "$_audit_nl" '\n'
	_audit_s="$(date +%s%N) ${SSH_CONNECTION%% *} $_audit_s$_audit_nl"
	printf %s "$_audit_s" >>"$audit_log"
}

if [ "${SSH_ORIGINAL_COMMAND+set}" != set ]; then
	# An interactive login: logged with an empty command.
	_audit ''
	exec /bin/sh -l
fi
if [ "$SSH_ORIGINAL_COMMAND" = "$sftp_server" ]; then
	_audit sftp
	_audit_cr=$(printf '\r')
	# sftp-server's own log (-e: to stderr, "message\r\n") goes through a pipe
	# to a loop that logs each line; the protocol keeps stdin and stdout.
	{ "$sftp_server" -e -l INFO 2>&1 >&3 3>&- | while IFS= read -r _audit_m; do
		_audit "sftp ${_audit_m%"$_audit_cr"}"
	done >/dev/null 3>&-; } 3>&1
	exit
fi
case $SSH_ORIGINAL_COMMAND in
"# drover shell session"*)
	# drover's shell session (transport/ssh/session.go) runs many
	# commands in one login shell; it calls drover_session_hook with each
	# before running it: each is logged as "in session: COMMAND".
	_audit "drover shell session"
	drover_session_hook() { _audit "in session: ${1%"$_audit_nl"}"; }
	eval "$SSH_ORIGINAL_COMMAND"
	exit
	;;
esac
_audit "$SSH_ORIGINAL_COMMAND"
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
