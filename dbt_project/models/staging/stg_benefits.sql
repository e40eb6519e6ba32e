-- Housing Benefit / Council Tax Reduction claims, one record per person named on a claim.
{{ staged_records('benefits', ['claim_type', 'weekly_award']) }}
