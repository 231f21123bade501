"""Partner portal: a partner's own clicks, conversions, earnings, links and coupons.

Invariant: every query is scoped to the signed-in user's partner id (`Scope.partner_id`);
an id in a URL that belongs to someone else is answered with 404, exactly like an id that
does not exist, so nothing leaks (not even existence).
"""
