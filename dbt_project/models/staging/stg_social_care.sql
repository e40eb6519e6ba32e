-- Children's social care: referrals, child in need, child protection plans; every version of every record.
{{ staged_records('social_care', ['referral_source', 'category', 'primary_need']) }}
